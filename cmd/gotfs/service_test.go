package main

// Tests of gotfs as a service: the mount helper form through the real mount(8) and
// mount.fuse3, --daemon, sd_notify, other users, add/remove/set on a running mount, rate caps.

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// serviceTorrent makes a torrent of random files under a new folder src/name, writes its
// .torrent file and returns its metainfo, the .torrent's path and src.
func serviceTorrent(t *testing.T, name string, files map[string]int, pieceLen int64, seed byte) (*torrentfile.Metainfo, string, string) {
	t.Helper()
	src := t.TempDir()
	writeRandomFiles(t, filepath.Join(src, name), files, seed)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, name), torrentfile.CreateOptions{PieceLength: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), name+".torrent")
	if err := os.WriteFile(tf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return mi, tf, src
}

// publicMountPoint makes an empty folder that every user can reach (t.TempDir's are 0700),
// removed when the test ends.
func publicMountPoint(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gotfs-svc-")
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mp, unix.MNT_DETACH)
		os.RemoveAll(dir)
	})
	return mp
}

// procsNaming returns the live (not zombie) processes whose command line contains s.
func procsNaming(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The state follows the command name in parentheses.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// killStrays kills, when the test ends, any process still naming s (a daemon the test started
// and failed to stop).
func killStrays(t *testing.T, s string) {
	t.Cleanup(func() {
		for _, pid := range procsNaming(s) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// waitNoProcess fails the test unless every process naming s is gone within d.
func waitNoProcess(t *testing.T, s string, d time.Duration) {
	t.Helper()
	if !waitUntil(d, func() bool { return len(procsNaming(s)) == 0 }) {
		t.Errorf("processes still running for %s: %v", s, procsNaming(s))
	}
}

// TestMountHelperFstab mounts through the real mount(8) and mount.fuse3, as an /etc/fstab line
// would: `mount -t fuse.gotfs TORRENT MOUNTPOINT -o allow_other,uid=,gid=,umask=,...`. mount(8)
// runs its helpers with a fixed PATH, so the test binary is bound over /usr/local/sbin in a
// private mount namespace (nothing outside it sees the change or the mount). The user nobody,
// owner by uid=/gid=, reads the file; another user is refused by umask=0227; umount ends the
// daemon, which logs the unmount and leaves no process behind.
func TestMountHelperFstab(t *testing.T) {
	testenv.RequireFUSE(t)
	for _, b := range []string{"mount", "umount", "mount.fuse3", "runuser", "unshare", "sha256sum"} {
		testenv.RequireBinary(t, b)
	}
	bin := buildBinary(t)
	mi, tf, src := serviceTorrent(t, "Show", map[string]int{"ep1.mkv": 700_000}, 32<<10, 21)
	seed := startTestSeeder(t, mi, src, "127.0.0.183:0")
	mp := publicMountPoint(t)
	killStrays(t, mp)
	logFile := filepath.Join(t.TempDir(), "gotfs.log")
	opts := strings.Join([]string{
		"allow_other", "uid=65534", "gid=65534", "umask=0227", "cache_dir=" + t.TempDir(),
		"no_dht", "listen=127.0.0.184:0", "peer=" + seed.Addr().String(), "log_file=" + logFile,
		"nofail", "_netdev", "x-systemd.automount", "ro", "prefetch",
	}, ",")
	script := `set -eu
mount --bind "$BINDIR" /usr/local/sbin
mount -t fuse.gotfs "$TORRENT" "$MP" -o "$OPTS"
stat -c 'owner=%u:%g mode=%a' "$MP/Show/ep1.mkv"
runuser -u nobody -- sha256sum "$MP/Show/ep1.mkv"
if runuser -u daemon -- cat "$MP/Show/ep1.mkv" >/dev/null 2>&1; then echo other=read; else echo other=refused; fi
grep " $MP " /proc/self/mounts
umount "$MP"
echo umounted
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BINDIR="+filepath.Dir(bin), "TORRENT="+tf, "MP="+mp, "OPTS="+opts)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("mount helper script: %v; log:\n%s", err, log)
	}
	want := sha256File(t, filepath.Join(src, "Show", "ep1.mkv"))
	for _, line := range []string{
		"owner=65534:65534 mode=440",
		hex.EncodeToString(want[:]) + "  " + mp + "/Show/ep1.mkv",
		"other=refused",
		"fuse.gotfs ro,",
		"default_permissions,allow_other",
		"umounted",
	} {
		if !strings.Contains(string(out), line) {
			t.Errorf("output lacks %q", line)
		}
	}
	waitNoProcess(t, mp, 10*time.Second)
	if !waitUntil(5*time.Second, func() bool {
		log, _ := os.ReadFile(logFile)
		return strings.Contains(string(log), "was unmounted")
	}) {
		log, _ := os.ReadFile(logFile)
		t.Errorf("the daemon did not log its unmount:\n%s", log)
	}
}

// listenNotify listens on an abstract unixgram socket, as systemd's $NOTIFY_SOCKET, and
// returns its name (with the @) and a channel of the datagrams received.
func listenNotify(t *testing.T) (string, <-chan string) {
	t.Helper()
	name := fmt.Sprintf("@gotfs-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return name, ch
}

// waitNotify waits for a datagram holding want and returns it.
func waitNotify(t *testing.T, ch <-chan string, want string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("notify socket closed before %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q on the notify socket within %v", want, d)
		}
	}
}

// TestMountDaemon: `mount --daemon` returns only once the files are there (no wait after
// it), sends READY=1 with a STATUS= line to $NOTIFY_SOCKET (an abstract name), and STOPPING=1
// when unmounted, after which the daemon is gone. A bad torrent makes it exit 1 with the
// child's one-line error, and leaves no process and no mount.
func TestMountDaemon(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	mi, tf, src := serviceTorrent(t, "Album", map[string]int{"a.flac": 900_000, "b.flac": 300_000}, 64<<10, 22)
	seed := startTestSeeder(t, mi, src, "127.0.0.185:0")
	mp := publicMountPoint(t)
	killStrays(t, mp)
	cacheDir := t.TempDir()
	notifyName, notes := listenNotify(t)

	cmd := exec.Command(bin, "mount", "--daemon", "--log-file", filepath.Join(t.TempDir(), "log"), "--no-dht",
		"--listen", "127.0.0.186:0", "--peer", seed.Addr().String(), "--cache-dir", cacheDir, tf, mp)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyName)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "gotfs: mounted Album at "+mp) {
		t.Fatalf("mount --daemon: %v: %s", err, out)
	}
	// Ready means ready: the files are there at once.
	if sha256File(t, filepath.Join(mp, "Album", "a.flac")) != sha256File(t, filepath.Join(src, "Album", "a.flac")) {
		t.Error("a.flac differs from the source")
	}
	ready := waitNotify(t, notes, "READY=1", 5*time.Second)
	if !strings.Contains(ready, "STATUS=1 torrent(s)") {
		t.Errorf("READY datagram %q lacks the STATUS line", ready)
	}
	st, err := queryStatus(t.Context(), cache.Root{Dir: cacheDir}, mp)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "unmount", mp).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v: %s", err, out)
	}
	waitNotify(t, notes, "STOPPING=1", 10*time.Second)
	if !waitUntil(10*time.Second, func() bool { return syscall.Kill(st.PID, 0) != nil || len(procsNaming(mp)) == 0 }) {
		t.Errorf("daemon %d still running after unmount", st.PID)
	}
	if isMounted(mp) {
		t.Error("still mounted")
	}

	// Failure: the parent prints the child's error and exits with its status.
	bad := filepath.Join(t.TempDir(), "bad.torrent")
	os.WriteFile(bad, []byte("d4:infoi1ee"), 0o644)
	var stdout, stderr strings.Builder
	cmd = exec.Command(bin, "mount", "--daemon", "--no-dht", "--cache-dir", cacheDir, bad, mp)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.ProcessState.ExitCode() != 1 || stdout.String() != "" || !strings.Contains(oneErrorLine(t, stderr.String()), "bad.torrent") {
		t.Errorf("mount --daemon of a bad torrent: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	waitNoProcess(t, mp, 5*time.Second)
	if isMounted(mp) {
		t.Error("a failed --daemon mount left a mount")
	}
}

// TestSDNotifyPath: sd_notify to a socket named by a path; a bad name is refused.
func TestSDNotifyPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := sdNotify(path, "READY=1\nSTATUS=up"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1\nSTATUS=up" {
		t.Errorf("received %q, %v", buf[:n], err)
	}
	if err := sdNotify("relative/name", "READY=1"); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
}

// TestAddRemove: `gotfs add` of a magnet link makes the torrent's folder appear in a running
// mount (its metadata from the mount's peer), and its cache is locked: another process
// (`gotfs cache verify`) is refused. `gotfs remove` makes it go and frees the lock. A torrent
// removed while one of its files is open keeps serving that file, and frees its lock when the
// file is closed.
func TestAddRemove(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	miA, tfA, _ := serviceTorrent(t, "First", map[string]int{"one.bin": 200_000, "two.bin": 1000}, 32<<10, 23)
	miB, _, srcB := serviceTorrent(t, "Second", map[string]int{"x.bin": 500_000, "y/z.bin": 70_000}, 32<<10, 24)
	seed := startTestSeeder(t, miB, srcB, "127.0.0.187:0")
	cacheDir := t.TempDir()
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	p := startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.189:0", "--peer", seed.Addr().String(), tfA, mp)
	p.ready(t, filepath.Join(mp, "First", "one.bin"))

	verifyCache := func(mi *torrentfile.Metainfo) (string, error) {
		out, err := exec.Command(bin, "cache", "verify", "--cache-dir", cacheDir, mi.InfoHash.Hex()).CombinedOutput()
		return string(out), err
	}
	magnet := "magnet:?xt=urn:btih:" + miB.InfoHash.Hex() + "&dn=Second"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "add", magnet, mp).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "added Second" {
		t.Fatalf("add: %v: %s\n%s", err, out, p.out.String())
	}
	for _, f := range []string{"x.bin", "y/z.bin"} {
		if sha256File(t, filepath.Join(mp, "Second", f)) != sha256File(t, filepath.Join(srcB, "Second", f)) {
			t.Errorf("Second/%s differs from the source", f)
		}
	}
	if out, err := verifyCache(miB); err == nil || !strings.Contains(out, "in use by another gotfs process (pid "+strconv.Itoa(p.cmd.Process.Pid)+")") {
		t.Errorf("cache verify of a mounted torrent: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "add", magnet, mp).CombinedOutput(); err == nil || !strings.Contains(string(out), "already in the mount") {
		t.Errorf("second add: %v: %s", err, out)
	}

	out, err = exec.Command(bin, "remove", "Second", mp).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "removed Second" {
		t.Fatalf("remove: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(mp, "Second")); !os.IsNotExist(err) {
		t.Errorf("Second still there after remove: %v", err)
	}
	if out, err := verifyCache(miB); err != nil || !strings.Contains(out, "verified") {
		t.Errorf("cache verify after remove: %v: %s", err, out)
	}

	// Removed while a file is open: the file keeps working, the lock waits for its close.
	f, err := os.Open(filepath.Join(mp, "First", "two.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err = exec.Command(bin, "remove", miA.InfoHash.Hex(), mp).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed First; 1 open file(s)") {
		t.Fatalf("remove with an open file: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(mp, "First")); !os.IsNotExist(err) {
		t.Errorf("First still there after remove: %v", err)
	}
	if _, err := os.Open(filepath.Join(mp, "First", "one.bin")); err == nil {
		t.Error("a file of a removed torrent could be opened")
	}
	if out, err := verifyCache(miA); err == nil {
		t.Errorf("cache of a removed torrent with an open file was not locked: %s", out)
	}
	f.Close()
	if !waitUntil(5*time.Second, func() bool { _, err := verifyCache(miA); return err == nil }) {
		out, err := verifyCache(miA)
		t.Errorf("cache still locked after the last file closed: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "remove", "First", mp).CombinedOutput(); err == nil || !strings.Contains(string(out), "no such torrent") {
		t.Errorf("remove of a removed torrent: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "unmount", mp).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v: %s", err, out)
	}
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("mount exited with %v; output:\n%s", err, p.out.String())
	}
}

// TestRateLimitSet: a mount fetching in the background (--prefetch) from a fast local seeder
// with --max-download-rate 1MiB downloads at about 1 MiB/s; `gotfs set --max-download-rate
// 4MiB` raises the cap at run time, and over the next 10 s the bytes the mount's peers
// delivered (its status: downloaded) stay within 10 % of 4 MiB/s. Without a cap this swarm
// moves hundreds of MiB/s.
func TestRateLimitSet(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	mi, tf, src := serviceTorrent(t, "Big", map[string]int{"big.bin": 80 << 20}, 256<<10, 25)
	seed := startTestSeeder(t, mi, src, "127.0.0.191:0")
	cacheDir := t.TempDir()
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	p := startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.192:0", "--peer", seed.Addr().String(),
		"--prefetch", "--max-download-rate", "1MiB", tf, mp)
	p.ready(t, filepath.Join(mp, "Big", "big.bin"))
	root := cache.Root{Dir: cacheDir}
	downloaded := func() int64 {
		st, err := queryStatus(t.Context(), root, mp)
		if err != nil || len(st.Torrents) != 1 {
			t.Fatalf("status: %v %+v", err, st)
		}
		return st.Torrents[0].Downloaded
	}
	rate := func(warmup, d time.Duration) float64 {
		time.Sleep(warmup)
		b0, t0 := downloaded(), time.Now()
		time.Sleep(d)
		return float64(downloaded()-b0) / time.Since(t0).Seconds()
	}
	if got := rate(time.Second, 2*time.Second); got < 0.8*(1<<20) || got > 1.2*(1<<20) {
		t.Errorf("with a 1 MiB/s cap: %.0f B/s", got)
	}
	out, err := exec.Command(bin, "set", mp, "--max-download-rate", "4MiB").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "download cap 4 MiB/s, upload cap none" {
		t.Fatalf("set: %v: %s", err, out)
	}
	got := rate(500*time.Millisecond, 10*time.Second)
	t.Logf("after gotfs set --max-download-rate 4MiB: %.0f B/s over 10 s", got)
	if want := float64(4 << 20); got < 0.9*want || got > 1.1*want {
		t.Errorf("with a 4 MiB/s cap: %.0f B/s, want 4194304 ± 10%%", got)
	}
	st, err := queryStatus(t.Context(), root, mp)
	if err != nil || st.MaxDownloadRate != 4<<20 || st.MaxUploadRate != 0 {
		t.Errorf("status caps: %v %+v", err, st)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("mount exited with %v; output:\n%s", err, p.out.String())
	}
}

// TestHelperArgs: the mount helper form becomes `mount --daemon`, each -o option the flag of
// the same name; the options mount(8), mount.fuse3 and systemd pass for themselves are
// dropped; an unknown option is a usage error; ordinary command lines are left alone.
func TestHelperArgs(t *testing.T) {
	root := newRootCmd(&app{})
	for _, c := range []struct {
		in   []string
		want string // joined with spaces; "error: ..." for an error
	}{
		{[]string{"/t/x.torrent", "/mnt/t", "-o", "rw,allow_other,uid=1000,gid=100,umask=027,cache_dir=/c,cache_size=1GiB,prefetch,ro,nofail,_netdev,x-systemd.automount,dev,suid"},
			"mount --daemon --allow-other --uid=1000 --gid=100 --umask=027 --cache-dir=/c --cache-size=1GiB --prefetch -- /t/x.torrent /mnt/t"},
		{[]string{"magnet:?xt=urn:btih:00", "/mnt/t", "-oallow_other", "-o", "max_download_rate=4MiB,peer=10.0.0.1:6881,peer=10.0.0.2:6881"},
			"mount --daemon --allow-other --max-download-rate=4MiB --peer=10.0.0.1:6881 --peer=10.0.0.2:6881 -- magnet:?xt=urn:btih:00 /mnt/t"},
		{[]string{"/t/x.torrent", "/mnt/t", "-o", "rw,bogus_option"}, "error: mount option \"bogus_option\": unknown"},
		{[]string{"/t/x.torrent", "/mnt/t", "-o", "daemon"}, "error: mount option \"daemon\": unknown"},
		{[]string{"/t/x.torrent", "/mnt/t", "-o"}, "error: mount helper: -o needs a value"},
		{[]string{"mount", "a.torrent", "/mnt/t"}, "mount a.torrent /mnt/t"},
		{[]string{"pars", "x"}, "pars x"}, // a typo stays cobra's to explain
		{[]string{"status", "/mnt/t", "-o", "x"}, "status /mnt/t -o x"},
	} {
		got, err := helperArgs(root, c.in)
		s := strings.Join(got, " ")
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(s, c.want) {
			t.Errorf("helperArgs(%q) = %q, want %q", c.in, s, c.want)
		}
	}
}

// TestServiceFlagErrors: bad ids, umasks, rates and flag combinations are usage errors.
func TestServiceFlagErrors(t *testing.T) {
	tf := writeTestTorrent(t, torrentfile.CreateOptions{})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mount", "--umask", "0888", tf, t.TempDir()}, "invalid umask"},
		{[]string{"mount", "--umask", "01000", tf, t.TempDir()}, "invalid umask"},
		{[]string{"mount", "--uid", "-2", tf, t.TempDir()}, "--uid -2"},
		{[]string{"mount", "--gid", "4294967295", tf, t.TempDir()}, "--gid 4294967295"},
		{[]string{"mount", "--log-file", "/tmp/x", tf, t.TempDir()}, "--log-file needs --daemon"},
		{[]string{"mount", "--daemon", "-", t.TempDir()}, "standard input"},
		{[]string{"mount", "--max-download-rate", "fast", tf, t.TempDir()}, "invalid size"},
		{[]string{"set", t.TempDir()}, "nothing to set"},
		{[]string{"set", "--max-upload-rate", "-1", t.TempDir()}, "invalid size"},
		{[]string{"add", tf}, "missing MOUNTPOINT"},
		{[]string{"remove", "x"}, "missing MOUNTPOINT"},
	} {
		code, _, stderr := runCLI(t, "", c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
	// Rates take an optional /s.
	var n int64
	if err := (rateValue{&n}).Set("4MiB/s"); err != nil || n != 4<<20 {
		t.Errorf("rate 4MiB/s = %d, %v", n, err)
	}
	// Not a mount: add, remove and set say so.
	code, _, stderr := runCLI(t, "", "set", "--cache-dir", t.TempDir(), "--max-download-rate", "1MiB", t.TempDir())
	if code != exitFailure || !strings.Contains(oneErrorLine(t, stderr), "not a gotfs mount") {
		t.Errorf("set on a plain folder: exit %d, %q", code, stderr)
	}
}

// TestMountAsUserAllowOther: a user other than root mounts through fusermount3 with
// --allow-other, which /etc/fuse.conf must allow: refused with a clear error without
// user_allow_other, and with it root and a third user read the file, and the user unmounts.
// A private mount namespace gets its own /etc/fuse.conf (fusermount3 reads it there).
func TestMountAsUserAllowOther(t *testing.T) {
	testenv.RequireFUSE(t)
	for _, b := range []string{"fusermount3", "runuser", "unshare", "sha256sum"} {
		testenv.RequireBinary(t, b)
	}
	bin := buildBinary(t)
	mi, tf, src := serviceTorrent(t, "Doc", map[string]int{"d.pdf": 300_000}, 32<<10, 26)
	seed := startTestSeeder(t, mi, src, "127.0.0.243:0")
	mp := publicMountPoint(t)
	dir := filepath.Dir(mp)
	killStrays(t, mp)
	// Everything the user needs, where the user can reach it.
	copyFile := func(from, to string, mode os.FileMode) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(bin, filepath.Join(dir, "gotfs"), 0o755)
	copyFile(tf, filepath.Join(dir, "doc.torrent"), 0o644)
	os.WriteFile(filepath.Join(dir, "fuse.conf.without"), []byte("# nothing\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "fuse.conf.with"), []byte("user_allow_other\n"), 0o644)
	for _, d := range []string{mp, filepath.Join(dir, "cache")} {
		os.MkdirAll(d, 0o755)
		os.Chown(d, 65534, 65534)
	}
	script := `set -u
mount --bind "$DIR/fuse.conf.without" /etc/fuse.conf
runuser -u nobody -- env -u XDG_RUNTIME_DIR "$DIR/gotfs" mount --daemon --allow-other $FLAGS "$DIR/doc.torrent" "$MP" 2>&1 && echo refused=no || echo refused=yes
mount --bind "$DIR/fuse.conf.with" /etc/fuse.conf
runuser -u nobody -- env -u XDG_RUNTIME_DIR "$DIR/gotfs" mount --daemon --allow-other $FLAGS "$DIR/doc.torrent" "$MP" || exit 1
grep " $MP " /proc/self/mounts
sha256sum "$MP/Doc/d.pdf"
runuser -u daemon -- sha256sum "$MP/Doc/d.pdf"
runuser -u nobody -- env -u XDG_RUNTIME_DIR "$DIR/gotfs" unmount "$MP" && echo unmounted
`
	flags := "--no-dht --listen 127.0.0.244:0 --peer " + seed.Addr().String() + " --cache-dir " + filepath.Join(dir, "cache") +
		" --log-file " + filepath.Join(dir, "cache", "log")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "DIR="+dir, "MP="+mp, "FLAGS="+flags)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "cache", "log"))
		t.Fatalf("script: %v; log:\n%s", err, log)
	}
	want := sha256File(t, filepath.Join(src, "Doc", "d.pdf"))
	sum := hex.EncodeToString(want[:]) + "  " + mp + "/Doc/d.pdf"
	if strings.Count(string(out), sum) != 2 {
		t.Errorf("root and another user should both read the file (%s)", sum)
	}
	for _, line := range []string{"user_allow_other in /etc/fuse.conf", "refused=yes", "fuse.gotfs", "user_id=65534", "allow_other", "unmounted"} {
		if !strings.Contains(string(out), line) {
			t.Errorf("output lacks %q", line)
		}
	}
	waitNoProcess(t, mp, 10*time.Second)
}
