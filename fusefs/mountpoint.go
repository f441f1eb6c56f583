package fusefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotMounted is returned by Unmount when nothing is mounted at the folder.
var ErrNotMounted = errors.New("not mounted")

// ErrBusy is returned by Unmount when files are open on the mount (use lazy).
var ErrBusy = errors.New("busy: files are open on it")

// ErrNotGotfs is returned by Unmount when the filesystem at the folder is not a gotfs mount.
var ErrNotGotfs = errors.New("not a gotfs mount")

// FSType is the filesystem type the kernel shows for a gotfs mount (/proc/self/mountinfo).
const FSType = "fuse.gotfs"

// MountFSType returns the filesystem type of the mount at dir ("fuse.gotfs", "tmpfs", ...),
// read from /proc/self/mountinfo; ErrNotMounted when dir is not a mount point. Where mounts
// are stacked, the topmost counts.
func MountFSType(dir string) (string, error) {
	m, err := findMount(canonicalMountPoint(dir))
	return m.fstype, err
}

// canonicalMountPoint resolves symlinks in dir's path as the kernel records mount points; a
// dead FUSE mount cannot be resolved itself (ENOTCONN), so only its parent is.
func canonicalMountPoint(dir string) string {
	dir = filepath.Clean(dir)
	if p, err := filepath.EvalSymlinks(dir); err == nil {
		return p
	}
	if p, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		return filepath.Join(p, filepath.Base(dir))
	}
	return dir
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	device string // major:minor
	fstype string
}

// findMount looks dir up in /proc/self/mountinfo (it reads the table afresh; it costs one
// small read, and is not on any read path).
func findMount(dir string) (mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	return parseMountinfo(f, dir)
}

// parseMountinfo finds dir in a mountinfo table (proc(5)): "ID parent major:minor root
// mountpoint options [optional fields] - fstype source superoptions", where the mount point
// has octal escapes for space, tab, newline and backslash. The last line for dir wins: it is
// the mount on top.
func parseMountinfo(r io.Reader, dir string) (mountEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var found mountEntry
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || sep+1 >= len(fields) {
			continue
		}
		if unescapeMountinfo(fields[4]) == dir {
			found = mountEntry{device: fields[2], fstype: fields[sep+1]}
		}
	}
	if err := sc.Err(); err != nil {
		return mountEntry{}, fmt.Errorf("list mounts: %w", err)
	}
	if found.fstype == "" {
		return mountEntry{}, ErrNotMounted
	}
	return found, nil
}

// unescapeMountinfo undoes the kernel's \ooo escapes in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount unmounts the FUSE filesystem at dir. lazy detaches it at once even when files are
// open (MNT_DETACH); the kernel ends it when they are closed. As root it calls umount2; other
// users go through fusermount3 (or fusermount).
//
// It refuses anything that is not a gotfs mount (ErrNotGotfs), so that a mistyped path
// never unmounts another filesystem.
func Unmount(dir string, lazy bool) error {
	switch fstype, err := MountFSType(dir); {
	case err != nil:
		return fmt.Errorf("unmount %s: %w", dir, err)
	case fstype != FSType:
		return fmt.Errorf("unmount %s: %w (it is %s)", dir, ErrNotGotfs, fstype)
	}
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		err := unix.Unmount(dir, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINVAL):
			return fmt.Errorf("unmount %s: %w", dir, ErrNotMounted)
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %s: %w", dir, ErrBusy)
		default:
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	bin, err := Fusermount()
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append(args, dir)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		switch {
		case strings.Contains(msg, "not mounted") || strings.Contains(msg, "not found in"):
			return fmt.Errorf("unmount %s: %w", dir, ErrNotMounted)
		case strings.Contains(msg, "busy"):
			return fmt.Errorf("unmount %s: %w", dir, ErrBusy)
		case msg != "":
			return fmt.Errorf("unmount %s: %s: %s", dir, bin, msg)
		}
		return fmt.Errorf("unmount %s: %s: %w", dir, bin, err)
	}
	return nil
}

// Fusermount returns the path of fusermount3 (or fusermount), which users other than root need
// to mount and unmount.
func Fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("fusermount3 is not installed; install the fuse3 package (apt-get install fuse3) or run as root")
}

// PrepareMountPoint checks that dir can be mounted on, with one-line errors that say what to
// do: /dev/fuse must exist, users other than root need fusermount3, and dir must be an empty
// folder. A stale mount left by a crashed process ("transport endpoint is not connected") is
// unmounted first.
func PrepareMountPoint(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing: load the fuse module (modprobe fuse), or give the container the device (--device /dev/fuse --cap-add SYS_ADMIN)")
	}
	if os.Geteuid() != 0 {
		if _, err := Fusermount(); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dir)
	if err == nil && fi.IsDir() {
		// A stale mount with default_permissions may answer stat from the kernel's attribute
		// cache for a second after its process died; opening it asks the dead process.
		if d, oerr := os.Open(dir); oerr != nil {
			err = oerr
		} else {
			d.Close()
		}
	}
	if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
		log.Warn("cleaning a stale mount left by a crashed process", "dir", dir)
		if uerr := Unmount(dir, true); uerr != nil {
			return fmt.Errorf("mount point %s is a stale mount and unmounting it failed: %w (try: umount -l %s)", dir, uerr, dir)
		}
		fi, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist: create it first (mkdir -p %s)", dir, dir)
	case err != nil:
		return fmt.Errorf("mount point %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("mount point %s is not a folder: give an empty folder", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	defer d.Close()
	if names, err := d.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mount point %s is not empty: give an empty folder (is something already mounted there? gotfs unmount %s)", dir, dir)
	} else if err != nil && err != io.EOF {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	return nil
}
