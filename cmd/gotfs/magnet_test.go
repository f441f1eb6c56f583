package main

import (
	"bytes"
	"context"
	"fmt"
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

// TestMagnetCLI runs the real binary through a trackerless swarm: a `gotfs seed` whose DHT node
// is the only bootstrap node, then peers --dht, download, parse --save and mount of a magnet
// link that carries nothing but the info hash.
func TestMagnetCLI(t *testing.T) {
	bin := buildBinary(t)
	src := t.TempDir()
	files := map[string]int{"clip.bin": 2_000_000, "sub/readme.txt": 4321}
	writeRandomFiles(t, filepath.Join(src, "Share"), files, 7)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "Share"), torrentfile.CreateOptions{PieceLength: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "share.torrent")
	if err := os.WriteFile(tfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	const seedAddr = "127.0.0.121:27121"
	seed := exec.Command(bin, "seed", tfile, src, "--listen", seedAddr, "--dht-bootstrap=", "--cache-dir", t.TempDir())
	var seedOut testenv.LockedBuffer
	seed.Stdout, seed.Stderr = &seedOut, &seedOut
	if err := seed.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seed.Process.Kill(); seed.Wait() })
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(seedOut.String(), "listening on port") }) {
		t.Fatalf("seeder did not start: %s", seedOut.String())
	}
	magnet := fmt.Sprintf("magnet:?xt=urn:btih:%x&dn=Share", mi.InfoHash)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("gotfs %s: %v\n%s\nseeder: %s", strings.Join(args, " "), err, out, seedOut.String())
		}
		return string(out)
	}

	out := run("peers", "--dht", "--dht-listen", "127.0.0.122:0", "--dht-bootstrap", seedAddr, "--timeout", "10s", "--cache-dir", t.TempDir(), magnet)
	if !strings.Contains(out, seedAddr) {
		t.Errorf("peers --dht did not find the seeder:\n%s", out)
	}

	dst := t.TempDir()
	run("download", magnet, "-o", dst, "--listen", "127.0.0.123:0", "--dht-bootstrap", seedAddr, "--cache-dir", t.TempDir())
	for name := range files {
		if sha256File(t, filepath.Join(src, "Share", name)) != sha256File(t, filepath.Join(dst, "Share", name)) {
			t.Errorf("downloaded %s differs", name)
		}
	}

	saved := filepath.Join(t.TempDir(), "saved.torrent")
	run("parse", magnet+"&x.pe="+seedAddr, "--save", saved, "--no-dht", "--listen", "127.0.0.124:0", "--cache-dir", t.TempDir())
	got, err := torrentfile.Load(saved)
	if err != nil {
		t.Fatalf("saved torrent: %v", err)
	}
	if got.InfoHash != mi.InfoHash {
		t.Errorf("saved torrent has info hash %x, want %x", got.InfoHash, mi.InfoHash)
	}

	// mount MAGNET: the mount appears once the metadata is known; a second mount of the same
	// link starts from the cache with no peer at all.
	testenv.RequireFUSE(t)
	cacheDir := t.TempDir()
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	m := exec.Command(bin, "mount", "--listen", "127.0.0.125:0", "--cache-dir", cacheDir, "--dht-bootstrap", seedAddr, magnet, mp)
	var mOut testenv.LockedBuffer
	m.Stdout, m.Stderr = &mOut, &mOut
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(mp, "Share", "clip.bin")
	if !waitUntil(30*time.Second, func() bool { _, err := os.Stat(clip); return err == nil }) {
		m.Process.Kill()
		t.Fatalf("mount of a magnet did not appear:\n%s", mOut.String())
	}
	if !strings.Contains(mOut.String(), "metadata") {
		t.Errorf("mount did not say it was fetching metadata:\n%s", mOut.String())
	}
	b, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(src, "Share", "clip.bin"))
	if !bytes.Equal(b, want) {
		t.Error("clip.bin read through the magnet mount differs")
	}
	m.Process.Signal(unix.SIGTERM)
	m.Wait()

	// Again, with no peer, no tracker and no DHT: the metadata and the data come from the cache.
	p2 := startMount(t, bin, "--listen", "127.0.0.125:0", "--cache-dir", cacheDir, magnet, mp)
	p2.ready(t, clip)
	if b, err := os.ReadFile(clip); err != nil || !bytes.Equal(b, want) {
		t.Errorf("cached magnet mount: %v", err)
	}
	p2.cmd.Process.Signal(unix.SIGTERM)
	p2.wait(t, 10*time.Second)
}
