package main

// Interop tests of magnet links against real clients: the metadata (BEP 9) of a magnet link
// fetched from aria2c and from transmission-daemon found through opentracker, and a
// trackerless swarm where gotfs finds an aria2c seeder through the DHT alone.
//
// Addresses: as in interop_test.go every client has its own 127.0.0.X (here 127.0.0.51–59),
// so the tracker, which takes a peer's address from the packet's source, tells them apart.

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gotfs/gotfs/dht"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/tracker"
)

// magnetLayout is a small multi-file torrent: a file that ends inside a piece, a nested one
// and a last piece shorter than the rest (64 KiB pieces).
var magnetLayout = interopLayout{
	"clip.bin":         2_500_003,
	"sub/notes.txt":    12_345,
	"sub/deep/end.bin": 700_000,
}

// magnetTorrent writes magnetLayout under a new folder name in data and writes a torrent of it
// announcing to trackers (none when empty). It returns the source folder, the torrent's path
// and its metainfo.
func magnetTorrent(t *testing.T, data, name string, seed uint64, trackers ...string) (string, string, *torrentfile.Metainfo) {
	t.Helper()
	src := filepath.Join(data, name)
	interopWrite(t, src, magnetLayout, seed)
	opts := torrentfile.CreateOptions{PieceLength: 64 << 10, NoDate: true}
	for _, tr := range trackers {
		opts.Trackers = append(opts.Trackers, []string{tr})
	}
	mi, raw, err := torrentfile.Create(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".torrent")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return src, path, mi
}

// magnetLink is the magnet link of mi with its name and trackers.
func magnetLink(mi *torrentfile.Metainfo, trackers ...string) string {
	s := fmt.Sprintf("magnet:?xt=urn:btih:%x&dn=%s", mi.InfoHash, url.QueryEscape(mi.Info.Name))
	for _, tr := range trackers {
		s += "&tr=" + url.QueryEscape(tr)
	}
	return s
}

// magnetStart starts gotfs with args (which must give --listen and --cache-dir).
func magnetStart(t *testing.T, bin string, args ...string) *interopProc {
	t.Helper()
	return interopStart(t, t.TempDir(), bin, args...)
}

// magnetWait waits for a gotfs started at start to exit, failing the test on a non-zero exit.
func magnetWait(t *testing.T, p *interopProc, start time.Time, d time.Duration) {
	t.Helper()
	if err := p.wait(t, d); err != nil {
		t.Fatalf("gotfs: %v\n%s", err, p.out.String())
	}
	t.Logf("gotfs %s took %v", p.cmd.Args[1], time.Since(start).Round(time.Millisecond))
}

// magnetRun runs gotfs with args (which must give --listen and --cache-dir) until it exits,
// failing the test on a non-zero exit.
func magnetRun(t *testing.T, bin string, d time.Duration, args ...string) {
	t.Helper()
	start := time.Now()
	magnetWait(t, magnetStart(t, bin, args...), start, d)
}

// magnetDownload starts `gotfs download MAGNET` from ip with no DHT, into a new folder it
// returns.
func magnetDownload(t *testing.T, bin, magnet, ip string) (*interopProc, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	return magnetStart(t, bin, "download", magnet, "-o", out, "--no-dht", "-v",
		"--listen", net.JoinHostPort(ip, "0"), "--cache-dir", t.TempDir()), out
}

// magnetParseSave runs `gotfs parse MAGNET --save` from ip with no DHT and a cache of its own
// (so the metadata comes from a peer) and checks the saved torrent's info hash.
func magnetParseSave(t *testing.T, bin, magnet string, mi *torrentfile.Metainfo, ip string) {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "saved.torrent")
	magnetRun(t, bin, 60*time.Second, "parse", magnet, "--save", saved, "--no-dht", "-v",
		"--listen", net.JoinHostPort(ip, "0"), "--cache-dir", t.TempDir())
	got, err := torrentfile.Load(saved)
	if err != nil {
		t.Fatalf("saved torrent: %v", err)
	}
	if got.InfoHash != mi.InfoHash {
		t.Errorf("saved torrent has info hash %x, want %x", got.InfoHash, mi.InfoHash)
	}
}

// magnetWaitScrape scrapes the tracker until ok accepts its counts for hash.
func magnetWaitScrape(t *testing.T, announce string, hash torrentfile.Hash, d time.Duration, ok func(tracker.ScrapeResult) bool) {
	t.Helper()
	c := tracker.NewClient(tracker.ClientOptions{Timeout: 5 * time.Second})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		res, err := c.Scrape(t.Context(), announce, []torrentfile.Hash{hash})
		if err == nil && ok(res[hash]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker %s: condition not met within %v (scrape of %x: %+v, %v)", announce, d, hash, res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInteropMagnetMetadata has gotfs fetch the metadata of a magnet link (BEP 9) and then the
// data from a real client found through the link's tracker, with no DHT; then `parse --save`
// fetches the metadata again and saves it. Each gotfs run has its own address: transmission
// tells peers apart by address alone and refuses a new connection from an address it still
// counts as connected.
func TestInteropMagnetMetadata(t *testing.T) {
	t.Parallel()
	bin := interopGotfs(t)

	// aria2c seeds and has announced before gotfs asks the tracker. Until gotfs has the
	// metadata it refuses peers that dial it ("unknown info hash") and announces again only
	// after the tracker's min interval (15 minutes for opentracker), so a seeder that comes
	// after gotfs's first announce is not found for minutes.
	t.Run("aria2c", func(t *testing.T) {
		t.Parallel()
		aria := testenv.RequireBinary(t, "aria2c")
		ot := testenv.StartOpentracker(t)
		data := t.TempDir()
		src, torrent, mi := magnetTorrent(t, data, "Magnet Aria", 51, ot.HTTPAnnounceURL())
		ot.Allow(t, mi.InfoHash)
		magnet := magnetLink(mi, ot.HTTPAnnounceURL())
		seeder := interopStart(t, data, aria, append(aria2Args("127.0.0.51", testenv.FreePort(t, "127.0.0.51")),
			"-V", "--seed-ratio=0.0", "-d", data, torrent)...)
		interopWaitOutput(t, seeder, "Verification finished successfully", 20*time.Second)
		magnetWaitScrape(t, ot.HTTPAnnounceURL(), mi.InfoHash, 20*time.Second, func(r tracker.ScrapeResult) bool { return r.Seeders > 0 })

		start := time.Now()
		dl, out := magnetDownload(t, bin, magnet, "127.0.0.52")
		magnetWait(t, dl, start, 60*time.Second)
		interopSame(t, src, filepath.Join(out, mi.Info.Name))

		magnetParseSave(t, bin, magnet, mi, "127.0.0.57")
	})

	// Transmission never dials loopback peers but accepts their connections: it announces
	// first, and gotfs, finding it in the tracker's peer list, dials it.
	t.Run("transmission", func(t *testing.T) {
		t.Parallel()
		testenv.RequireBinary(t, "transmission-remote")
		daemon := testenv.RequireBinary(t, "transmission-daemon")
		ot := testenv.StartOpentracker(t)
		data := t.TempDir()
		src, torrent, mi := magnetTorrent(t, data, "Magnet Transmission", 53, ot.UDPAnnounceURL())
		ot.Allow(t, mi.InfoHash)
		magnet := magnetLink(mi, ot.UDPAnnounceURL())
		tr := startTransmission(t, daemon, "127.0.0.53")
		tr.add(t, torrent, data)
		tr.waitPercent(t, 100, 20*time.Second) // verified: it seeds
		tr.waitAnnounced(t, 20*time.Second)

		start := time.Now()
		dl, out := magnetDownload(t, bin, magnet, "127.0.0.54")
		magnetWait(t, dl, start, 60*time.Second)
		interopSame(t, src, filepath.Join(out, mi.Info.Name))

		magnetParseSave(t, bin, magnet, mi, "127.0.0.58")
	})
}

// TestInteropMagnetDHTAria2 is a trackerless swarm: an in-process DHT node is the rendezvous,
// aria2c seeds with its DHT bootstrapped from it (aria2c announces itself to the node), and
// gotfs, given nothing but the info hash and the node's address, finds aria2c through the DHT,
// fetches the metadata from it and downloads.
func TestInteropMagnetDHTAria2(t *testing.T) {
	t.Parallel()
	aria := testenv.RequireBinary(t, "aria2c")
	bin := interopGotfs(t)
	node, err := dht.New(dht.Config{Addr: "127.0.0.1:0", Bootstrap: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })

	data := t.TempDir()
	src, torrent, mi := magnetTorrent(t, data, "Trackerless", 55)
	// aria2c's announce_peer comes from 127.0.0.1, so the node stores 127.0.0.1:btPort.
	btPort, dhtPort := testenv.FreePort(t, "127.0.0.1"), testenv.FreePort(t, "127.0.0.1")
	seeder := interopStart(t, data, aria,
		"--enable-dht=true", "--enable-dht6=false", "--dht-entry-point="+node.Addr().String(),
		"--dht-listen-port="+strconv.Itoa(dhtPort), "--dht-file-path="+filepath.Join(t.TempDir(), "dht.dat"),
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--disable-ipv6=true", "--interface=127.0.0.1",
		"--listen-port="+strconv.Itoa(btPort), "--file-allocation=falloc", "--summary-interval=0",
		"--console-log-level=notice", "--no-conf=true", "--auto-save-interval=0",
		"--bt-save-metadata=false", "--rpc-save-upload-metadata=false",
		"-V", "--seed-ratio=0.0", "-d", data, torrent)
	interopWaitOutput(t, seeder, "Verification finished successfully", 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for node.Stats().Peers == 0 {
		if seeder.exited() || time.Now().After(deadline) {
			t.Fatalf("aria2c did not announce itself to our DHT node; stats %+v", node.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("aria2c announced; node stats %+v", node.Stats())

	out := filepath.Join(t.TempDir(), "out")
	magnet := fmt.Sprintf("magnet:?xt=urn:btih:%x", mi.InfoHash)
	magnetRun(t, bin, 60*time.Second, "download", magnet, "-o", out, "-v",
		"--dht-bootstrap", node.Addr().String(), "--listen", "127.0.0.56:0", "--cache-dir", t.TempDir())
	interopSame(t, src, filepath.Join(out, mi.Info.Name))
}
