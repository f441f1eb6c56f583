package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/torrentfile"
)

// lockFileName is the lock of a torrent's cache folder.
const lockFileName = "lock"

// ErrLocked is returned by Root.Lock when another process holds the torrent's cache.
var ErrLocked = errors.New("in use by another gotfs process")

// Lock is a held lock on one torrent's cache folder: while it is held no other process can
// take it, so a running mount's cache is not opened, checked or removed from elsewhere. It is
// an flock(2) on the folder's lock file, so the kernel frees it when the holder exits, however
// it exits.
type Lock struct {
	f *os.File
}

// Lock takes the lock of hash's cache folder without waiting, creating the folder if needed.
// When another process holds it the error wraps ErrLocked and names that process.
func (r Root) Lock(hash torrentfile.Hash) (*Lock, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	dir := r.TorrentDir(hash)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock cache of %s: %w", hash.Hex(), err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("lock cache of %s: %s is not a folder", hash.Hex(), dir)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock cache of %s: %w", hash.Hex(), err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("cache of %s: %w%s", hash.Hex(), ErrLocked, holder)
		}
		return nil, fmt.Errorf("lock cache of %s: %w", hash.Hex(), err)
	}
	// The holder's pid, for the error another process gets; the lock itself is the flock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// readHolder returns " (pid N)" from a lock file another process holds, or "".
func readHolder(f *os.File) string {
	b := make([]byte, 16)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

// Close frees the lock. It is safe to call more than once.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor of the open file frees the flock
	l.f = nil
	return err
}
