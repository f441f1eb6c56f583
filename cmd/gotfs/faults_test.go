package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// faultTorrent writes a torrent of one random file of size bytes and returns its path, the
// source data and a seeder's address.
func faultTorrent(t *testing.T, size int, seederAddr string) (string, []byte, string) {
	t.Helper()
	src := t.TempDir()
	writeRandomFiles(t, filepath.Join(src, "F"), map[string]int{"f.bin": size}, 11)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "F"), torrentfile.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "f.torrent")
	if err := os.WriteFile(tfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(src, "F", "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	s := startTestSeeder(t, mi, src, seederAddr)
	return tfile, data, s.Addr().String()
}

// TestMountKill9ThenRemount: a mount killed with SIGKILL after reading a file leaves a stale
// mount and a cache whose record may lag; the next mount, with no peer at all, serves every
// byte read before the crash (nothing needs fetching again).
func TestMountKill9ThenRemount(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	tfile, data, seeder := faultTorrent(t, 3<<20, "127.0.0.221:0")
	cacheDir, mp := t.TempDir(), t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	file := filepath.Join(mp, "F", "f.bin")
	p := startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.222:0", "--peer", seeder, tfile, mp)
	p.ready(t, file)
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("read before the crash: %v", err)
	}
	p.cmd.Process.Kill() // no chance to save the completion record
	p.wait(t, 10*time.Second)
	p = startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.223:0", "--read-timeout", "2s", tfile, mp)
	p.ready(t, file)
	b, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("read after the crash with no peer: %v", err)
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	p.wait(t, 10*time.Second)
}

// TestMountCacheFull: a mount whose cache lives on a full 2 MiB tmpfs keeps serving what it
// has, fails reads it cannot store with EIO (not a hang), and says why in one line.
func TestMountCacheFull(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.RequireRoot(t, "mounting a small tmpfs")
	bin := buildBinary(t)
	tfile, data, seeder := faultTorrent(t, 6<<20, "127.0.0.224:0")
	small := testenv.SmallTmpfs(t, "2m")
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	file := filepath.Join(mp, "F", "f.bin")
	p := startMount(t, bin, "--cache-dir", small, "--listen", "127.0.0.225:0", "--peer", seeder, "--readahead", "0", tfile, mp)
	p.ready(t, file)
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	// The head fits: it is served.
	if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data[:len(buf)]) {
		t.Fatalf("read of the head: %v", err)
	}
	// Reading on fills the tmpfs; some read must fail rather than hang.
	failed := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
			n, err := f.ReadAt(buf, off)
			if err != nil {
				failed = true
				return
			}
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Errorf("wrong bytes at %d", off)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("reads hang on a full cache\n%s", p.out.String())
	}
	if !failed {
		t.Fatal("6 MiB were served through a 2 MiB cache with no error")
	}
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(p.out.String(), "no space left on device") }) {
		t.Errorf("the mount did not say the cache is full:\n%s", p.out.String())
	}
	// What is cached is still served.
	if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data[:len(buf)]) {
		t.Fatalf("read of the head after the disk filled: %v", err)
	}
	f.Close()
	p.cmd.Process.Signal(unix.SIGTERM)
	p.wait(t, 10*time.Second)
}

// TestUnusableCacheFolder: a cache folder that cannot be used gets a clear one-line error.
func TestUnusableCacheFolder(t *testing.T) {
	bin := buildBinary(t)
	tfile, _, seeder := faultTorrent(t, 100_000, "127.0.0.226:0")
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "download", tfile, "-o", t.TempDir(), "--cache-dir", notDir, "--peer", seeder,
		"--listen", "127.0.0.227:0", "--no-dht").CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err == nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "gotfs: ") || !strings.Contains(lines[0], "cache") {
		t.Errorf("download with a file as cache folder: %v\n%s", err, out)
	}
}
