package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/status"
	"github.com/gotfs/gotfs/torrentfile"
)

// writeRandomFiles writes files of the given sizes (names are relative paths) under dir.
func writeRandomFiles(t testing.TB, dir string, files map[string]int, seed byte) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{seed})
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rng.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256File(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return [32]byte(h.Sum(nil))
}

func isMounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mounts")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// gotfsProc is a running `gotfs mount`.
type gotfsProc struct {
	cmd  *exec.Cmd
	out  *testenv.LockedBuffer
	done chan error
}

func startMount(t *testing.T, bin string, args ...string) *gotfsProc {
	t.Helper()
	p := &gotfsProc{cmd: exec.Command(bin, append([]string{"mount", "--no-dht"}, args...)...), out: &testenv.LockedBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// wait waits for the process to exit and returns its error.
// ready waits until the mount is up (a stale mount's cached entries could answer a stat).
func (p *gotfsProc) ready(t *testing.T, path string) {
	t.Helper()
	if !waitUntil(10*time.Second, func() bool {
		if !strings.Contains(p.out.String(), "gotfs: mounted") {
			return false
		}
		_, err := os.Stat(path)
		return err == nil
	}) {
		t.Fatalf("%s did not appear; output:\n%s", path, p.out.String())
	}
}

func (p *gotfsProc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(d):
		p.cmd.Process.Kill()
		t.Fatalf("gotfs mount still running after %v; output:\n%s", d, p.out.String())
		return nil
	}
}

// TestMountBinary runs the real binary: mount a folder of .torrent files, read, status, a
// .torrent added while mounted, unmount; then a remount served from the cache that stops on
// SIGTERM; then a crash (SIGKILL) whose stale mount the next mount cleans.
func TestMountBinary(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	src := t.TempDir()
	files := map[string]int{"movie.mkv": 3_000_000, "extras/notes.txt": 12_345, "extras/poster.jpg": 400_001}
	writeRandomFiles(t, filepath.Join(src, "Movie"), files, 1)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "Movie"), torrentfile.CreateOptions{PieceLength: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	torrents := t.TempDir()
	if err := os.WriteFile(filepath.Join(torrents, "movie.torrent"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// A seeder on loopback.
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: src, RecordPath: filepath.Join(t.TempDir(), "rec"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seeder, err := fetch.NewClient(fetch.Config{ListenAddr: "127.0.0.41:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	if _, err := seeder.AddTorrent(mi, fetch.TorrentOptions{Storage: st, NoTrackers: true}); err != nil {
		t.Fatal(err)
	}

	cacheDir := t.TempDir()
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	args := []string{"--cache-dir", cacheDir, "--listen", "127.0.0.1:0", "--peer", seeder.Addr().String(), "--poll", "200ms", "-v"}
	p := startMount(t, bin, append(args, torrents, mp)...)
	movie := filepath.Join(mp, "Movie", "movie.mkv")
	p.ready(t, movie)
	start := time.Now()
	h, err := os.Open(movie)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Logf("first byte after %v", time.Since(start))
	for name := range files {
		if sha256File(t, filepath.Join(mp, "Movie", name)) != sha256File(t, filepath.Join(src, "Movie", name)) {
			t.Errorf("%s differs from the source", name)
		}
	}

	// status, as JSON and as a table. Every file is complete now: a new open is read by the
	// kernel from the cache (passthrough) once the last ordinary handle's release settled.
	var out []byte
	var ms status.Mount
	for deadline := time.Now().Add(5 * time.Second); ; {
		if sha256File(t, movie) != sha256File(t, filepath.Join(src, "Movie", "movie.mkv")) {
			t.Errorf("movie.mkv differs from the source on a second read")
		}
		out, err = exec.Command(bin, "status", "--cache-dir", cacheDir, "--json", mp).CombinedOutput()
		if err != nil {
			t.Fatalf("status: %v: %s", err, out)
		}
		if err := json.Unmarshal(out, &ms); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		if !ms.Passthrough || ms.PassthroughOpens > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(400 * time.Millisecond)
	}
	if len(ms.Torrents) != 1 || ms.Torrents[0].Name != "Movie" || ms.Torrents[0].VerifiedBytes != mi.Info.Length ||
		ms.Mountpoint != mp || ms.PID != p.cmd.Process.Pid || ms.Reads == 0 {
		t.Errorf("status: %s", out)
	}
	if testenv.InCI() && (!ms.Passthrough || ms.PassthroughOpens == 0) {
		t.Errorf("status: no passthrough open of a complete file in CI (root, Linux 6.9+): %s", out)
	}
	// Without --cache-dir (and without any home), status finds the mount's socket in the
	// runtime folder.
	statusCmd := exec.Command(bin, "status", mp)
	statusCmd.Env = append(os.Environ(), "HOME=", "XDG_CACHE_HOME=")
	out, err = statusCmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Movie") || !strings.Contains(string(out), "100.0%") {
		t.Errorf("status table without --cache-dir: %v: %s", err, out)
	}

	// A .torrent added to the folder while mounted appears.
	writeRandomFiles(t, src, map[string]int{"late.bin": 1000}, 2)
	_, raw2, err := torrentfile.Create(t.Context(), filepath.Join(src, "late.bin"), torrentfile.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(torrents, "late.torrent"), raw2, 0o644); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool { _, err := os.Stat(filepath.Join(mp, "late.bin")); return err == nil }) {
		t.Errorf("a torrent added to the folder did not appear; output:\n%s", p.out.String())
	}

	// gotfs unmount: the mount process saves state and exits cleanly.
	if out, err := exec.Command(bin, "unmount", mp).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v: %s", err, out)
	}
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("mount exited with %v after unmount; output:\n%s", err, p.out.String())
	}
	if isMounted(mp) {
		t.Fatal("still mounted after gotfs unmount")
	}
	if out, err := exec.Command(bin, "unmount", mp).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a mount point") {
		t.Errorf("second unmount: %v: %s", err, out)
	}

	// Remount with no peer: the cache serves everything; SIGTERM unmounts cleanly.
	seeder.Close()
	p = startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.1:0", filepath.Join(torrents, "movie.torrent"), mp)
	p.ready(t, movie)
	if sha256File(t, movie) != sha256File(t, filepath.Join(src, "Movie", "movie.mkv")) {
		t.Error("movie.mkv from the cache differs from the source")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("mount exited with %v after SIGTERM; output:\n%s", err, p.out.String())
	}
	if isMounted(mp) {
		t.Fatal("still mounted after SIGTERM")
	}

	// A crash leaves a stale mount; the next mount cleans it.
	p = startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.1:0", filepath.Join(torrents, "movie.torrent"), mp)
	p.ready(t, movie)
	p.cmd.Process.Kill()
	p.wait(t, 10*time.Second)
	if _, err := os.Stat(mp); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after a crash, stat of the mount point: %v, want ENOTCONN", err)
	}
	p = startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.1:0", filepath.Join(torrents, "movie.torrent"), mp)
	p.ready(t, movie)
	p.cmd.Process.Signal(syscall.SIGINT)
	// Ctrl-C unmounts cleanly, and exits 130 as every command does after Ctrl-C.
	if err := p.wait(t, 10*time.Second); p.cmd.ProcessState == nil || p.cmd.ProcessState.ExitCode() != 130 {
		t.Fatalf("mount exited with %v after SIGINT, want exit 130; output:\n%s", err, p.out.String())
	}
	if isMounted(mp) {
		t.Fatal("still mounted after SIGINT")
	}
}

// TestMountErrors checks the one-line errors for bad mount points, in process.
func TestMountErrors(t *testing.T) {
	testenv.RequireFUSE(t)
	src := t.TempDir()
	writeRandomFiles(t, src, map[string]int{"f.bin": 1000}, 3)
	_, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "f.bin"), torrentfile.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), "f.torrent")
	if err := os.WriteFile(tf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644)
	bad := filepath.Join(t.TempDir(), "bad.torrent")
	os.WriteFile(bad, []byte("d4:infoi1ee"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{tf, filepath.Join(t.TempDir(), "missing")}, "does not exist: create it first"},
		{[]string{tf, nonEmpty}, "is not empty"},
		{[]string{tf, tf}, "is not a folder"},
		{[]string{bad, t.TempDir()}, "bad.torrent"},
		{[]string{filepath.Join(src, "nope.torrent"), t.TempDir()}, "no such file"},
	} {
		var out bytes.Buffer
		cmd := newRootCmd(&app{stdout: &out, stderr: &out})
		cmd.SetArgs(append([]string{"mount", "--no-dht", "--cache-dir", t.TempDir()}, tc.args...))
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("mount %q: %v, want a one-line error with %q", tc.args, err, tc.want)
		}
	}
	var out bytes.Buffer
	cmd := newRootCmd(&app{stdout: &out, stderr: &out})
	cmd.SetArgs([]string{"status", "--cache-dir", t.TempDir(), t.TempDir()})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "not a gotfs mount") {
		t.Errorf("status of a folder that is not mounted: %v", err)
	}
}

// TestAddProcsForFUSE: a mount runs with fuseExtraProcs Ps above the runtime's default however
// often the process mounts, and a GOMAXPROCS chosen in the environment stays as it is.
func TestAddProcsForFUSE(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	t.Setenv("GOMAXPROCS", "") // unset for os.Getenv
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	addProcsForFUSE()
	addProcsForFUSE()
	if got := runtime.GOMAXPROCS(0); got != def+fuseExtraProcs {
		t.Fatalf("GOMAXPROCS after two mounts = %d, want the default %d + %d", got, def, fuseExtraProcs)
	}
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	addProcsForFUSE()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS=3 in the environment, after a mount %d", got)
	}
}
