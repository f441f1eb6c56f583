package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// TestLocalDiscoveryDownload runs `gotfs seed` and `gotfs download` in two network namespaces
// joined by a veth pair, with no tracker, no DHT and no --peer: they can only find each other
// by local service discovery (BEP 14), and the download must complete. It reports the time
// from the download's start to the first peer found by LSD.
func TestLocalDiscoveryDownload(t *testing.T) {
	bin := interopGotfs(t)
	a, b := testenv.NewNetns(t, "lsda"), testenv.NewNetns(t, "lsdb")
	testenv.Veth(t, a, "eth0", b, "eth0")
	for i, ns := range []*testenv.Netns{a, b} {
		ns.IP(t, "addr", "add", []string{"10.78.0.1/24", "10.78.0.2/24"}[i], "dev", "eth0")
		ns.IP(t, "route", "add", "239.0.0.0/8", "dev", "eth0")
	}
	src := t.TempDir()
	writeRandomFiles(t, src, map[string]int{"video.bin": 3_000_000}, 14)
	_, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "video.bin"), torrentfile.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), "video.torrent")
	if err := os.WriteFile(tf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	seedDir, dlDir := t.TempDir(), t.TempDir()
	seed := interopStart(t, seedDir, "ip", "netns", "exec", a.Name, bin, "seed", tf, filepath.Join(src, "video.bin"),
		"--cache-dir", filepath.Join(seedDir, "cache"), "--listen", "10.78.0.1:6881", "--no-dht", "--no-port-mapping", "-v")
	interopWaitOutput(t, seed, "listening on port", 20*time.Second)
	start := time.Now()
	out := filepath.Join(dlDir, "out")
	dl := interopStart(t, dlDir, "ip", "netns", "exec", b.Name, bin, "download", tf, "-o", out,
		"--cache-dir", filepath.Join(dlDir, "cache"), "--listen", "10.78.0.2:6881", "--no-dht", "--no-port-mapping", "-v")
	const found = "peer found on the local network"
	for !strings.Contains(seed.out.String(), found) && !strings.Contains(dl.out.String(), found) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no peer found by LSD within 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("first peer found by LSD %v after the download started", time.Since(start).Round(time.Millisecond))
	if err := dl.wait(t, 60*time.Second); err != nil {
		t.Fatalf("gotfs download: %v", err)
	}
	t.Logf("download done %v after start", time.Since(start).Round(time.Millisecond))
	interopSame(t, filepath.Join(src, "video.bin"), filepath.Join(out, "video.bin"))
}
