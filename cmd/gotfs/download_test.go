package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/internal/testswarm/seeder"
	"github.com/gotfs/gotfs/torrentfile"
)

// buildBinary returns the gotfs binary that the package's tests share (built once).
func buildBinary(t *testing.T) string { return interopGotfs(t) }

// startTestSeeder seeds src/<name> of mi from an in-process client at addr.
func startTestSeeder(t *testing.T, mi *torrentfile.Metainfo, src, addr string) *fetch.Client {
	t.Helper()
	return seeder.Start(t, mi, src, addr)
}

// TestDownloadResumeAfterKill9: a download killed with SIGKILL half-way is resumed by the next
// run, which fetches exactly the pieces that were not on disk yet.
func TestDownloadResumeAfterKill9(t *testing.T) {
	bin := buildBinary(t)
	src := t.TempDir()
	writeRandomFiles(t, filepath.Join(src, "Big"), map[string]int{"a.bin": 48 << 20, "b.bin": 5 << 20}, 3)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "Big"), torrentfile.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "big.torrent")
	if err := os.WriteFile(tfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	seeder := startTestSeeder(t, mi, src, "127.0.0.131:0")
	out, cacheDir := t.TempDir(), t.TempDir()
	args := []string{"download", tfile, "-o", out, "--peer", seeder.Addr().String(), "--listen", "127.0.0.132:0",
		"--no-dht", "--cache-dir", cacheDir, "--json"}

	first := exec.Command(bin, args...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once about a third of the bytes are written (the files' space is reserved at
	// the start: count the data, not the allocated blocks).
	target := mi.Info.Length / 3
	killed := waitUntil(30*time.Second, func() bool {
		var n int64
		for _, f := range mi.Info.Files {
			n += writtenBytes(t, filepath.Join(append([]string{out}, f.Path...)...))
		}
		return n >= target
	})
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if !killed {
		t.Fatal("the first download never got a third of the way")
	}

	second := exec.Command(bin, args...)
	second.Stderr = os.Stderr
	b, err := second.Output()
	if err != nil {
		t.Fatalf("resumed download: %v", err)
	}
	var sum downloadSummary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary %q: %v", b, err)
	}
	pieces := mi.Info.NumPieces()
	had := int((sum.AlreadyHad + mi.Info.PieceLength - 1) / mi.Info.PieceLength) // the last piece may be short
	if sum.AlreadyHad < target/2 {
		t.Errorf("resume found %d bytes on disk; at least %d were written before the kill", sum.AlreadyHad, target/2)
	}
	if had+sum.PiecesFetched != pieces {
		t.Errorf("resume: %d pieces on disk + %d fetched != %d: a verified piece was fetched again", had, sum.PiecesFetched, pieces)
	}
	for _, name := range []string{"a.bin", "b.bin"} {
		if sha256File(t, filepath.Join(src, "Big", name)) != sha256File(t, filepath.Join(out, "Big", name)) {
			t.Errorf("%s differs from the source", name)
		}
	}
	t.Logf("killed after >= %d bytes; resume found %d pieces, fetched %d of %d", target, had, sum.PiecesFetched, pieces)
}

// writtenBytes is how many bytes of the file at path hold data (SEEK_DATA/SEEK_HOLE: space
// reserved but never written reads as a hole); 0 when it does not exist yet.
func writtenBytes(t *testing.T, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var n, off int64
	for {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			return n // ENXIO: no data after off
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatalf("SEEK_HOLE in %s: %v", path, err)
		}
		n += hole - data
		off = hole
	}
}

// TestDownloadFullDisk: a download into a folder that fills up stops with a clear error, and the
// completion record claims only what is on disk.
func TestDownloadFullDisk(t *testing.T) {
	testenv.RequireRoot(t, "mounting a small tmpfs")
	bin := buildBinary(t)
	src := t.TempDir()
	writeRandomFiles(t, filepath.Join(src, "Fat"), map[string]int{"x.bin": 6 << 20}, 4)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "Fat"), torrentfile.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "fat.torrent")
	if err := os.WriteFile(tfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	seeder := startTestSeeder(t, mi, src, "127.0.0.133:0")
	small := testenv.SmallTmpfs(t, "2m")
	// By default the download reserves the files' space first and fails before it fetches
	// anything; with --sparse it fails at the write that finds the disk full.
	for _, sparse := range []bool{false, true} {
		cacheDir := t.TempDir()
		args := []string{"download", tfile, "-o", small, "--peer", seeder.Addr().String(), "--listen", "127.0.0.134:0",
			"--no-dht", "--cache-dir", cacheDir}
		if sparse {
			args = append(args, "--sparse")
		}
		b, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			t.Fatalf("download (sparse %v) into a 2 MiB folder succeeded:\n%s", sparse, b)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		last := lines[len(lines)-1]
		if !strings.Contains(last, "no space left on device") || !strings.HasPrefix(last, "gotfs: ") {
			t.Errorf("sparse %v: last line %q, want a one-line error naming the full disk\n%s", sparse, last, b)
		}
		if reserve := strings.Contains(last, "reserve"); reserve == sparse {
			t.Errorf("sparse %v: last line %q; want the space reservation to fail only without --sparse", sparse, last)
		}
		// Whatever the record claims verifies on disk.
		root := cache.Root{Dir: cacheDir}
		st, err := cache.Open(&mi.Info, cache.Options{DataDir: small, RecordPath: downloadRecordPath(root, mi.InfoHash, small), ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		claimed := st.VerifiedCount()
		if err := st.Check(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		if st.VerifiedCount() != claimed {
			t.Errorf("sparse %v: record claimed %d pieces, %d verify", sparse, claimed, st.VerifiedCount())
		}
		st.Close()
		if err := os.RemoveAll(filepath.Join(small, "Fat")); err != nil {
			t.Fatal(err)
		}
	}
}
