package main

import (
	"bytes"
	"encoding/hex"
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

// TestDamagedCacheNeverServed: a byte flipped in a cached file while unmounted is found by
// `gotfs cache verify`, and a mount with --verify never serves a damaged piece.
func TestDamagedCacheNeverServed(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	src := t.TempDir()
	writeRandomFiles(t, filepath.Join(src, "Doc"), map[string]int{"d.bin": 1 << 20}, 9)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "Doc"), torrentfile.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "doc.torrent")
	if err := os.WriteFile(tfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(src, "Doc", "d.bin"))
	if err != nil {
		t.Fatal(err)
	}
	seeder := startTestSeeder(t, mi, src, "127.0.0.141:0")
	cacheDir, mp := t.TempDir(), t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	file := filepath.Join(mp, "Doc", "d.bin")

	// Fill the cache through a mount.
	p := startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.142:0", "--peer", seeder.Addr().String(), tfile, mp)
	p.ready(t, file)
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("first read: %v", err)
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	p.wait(t, 10*time.Second)
	seeder.Close()

	// Damage piece 3 and piece 9 of the cached copy.
	cached := filepath.Join(cacheDir, hex.EncodeToString(mi.InfoHash[:]), "data", "Doc", "d.bin")
	flip := func(off int64) {
		f, err := os.OpenFile(cached, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		f.ReadAt(b, off)
		b[0] ^= 0x55
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	flip(3*64<<10 + 100)
	out, err := exec.Command(bin, "cache", "verify", "--cache-dir", cacheDir, hex.EncodeToString(mi.InfoHash[:])).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "15 of 16 pieces verified") {
		t.Fatalf("cache verify: %v\n%s", err, out)
	}
	flip(9*64<<10 + 7)

	// No peer at all now: the mount can serve only what verifies.
	p = startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.143:0", "--verify", "--read-timeout", "500ms", tfile, mp)
	p.ready(t, file)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for piece := range 16 {
		n, err := f.ReadAt(buf, int64(piece)*64<<10)
		switch piece {
		case 3, 9:
			if err == nil {
				t.Errorf("damaged piece %d was served", piece)
			}
		default:
			if err != nil || !bytes.Equal(buf[:n], want[piece*64<<10:piece*64<<10+n]) {
				t.Errorf("piece %d: %v", piece, err)
			}
		}
	}
	f.Close()
	p.cmd.Process.Signal(unix.SIGTERM)
	p.wait(t, 10*time.Second)
}
