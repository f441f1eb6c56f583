package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/torrentfile"
)

// padFiles is a multi-file layout with BEP 47 pad files between the files, as libtorrent and
// transmission write them: web seeds are never asked for pad bytes.
var padFiles = []testswarm.File{
	{Path: []string{"a.bin"}, Size: 3*64<<10 + 1000},
	{Path: []string{".pad", "64536"}, Size: 64<<10 - 1000, Pad: true},
	{Path: []string{"sub", "b.bin"}, Size: 5 * 64 << 10},
	{Path: []string{"c.bin"}, Size: 2*64<<10 + 17},
}

// webLeecher downloads mi into a new folder, which it returns, from its web seeds and the
// given peers (no tracker).
func webLeecher(t *testing.T, ip string, mi *torrentfile.Metainfo, peers []netip.AddrPort, background bool) (*node, string) {
	t.Helper()
	dst := t.TempDir()
	return startLeecher(t, ip, mi, dst, filepath.Join(t.TempDir(), "rec"), peers, TorrentOptions{Background: background}), dst
}

// TestWebSeedOnlyDownload: a torrent whose only source is a url-list pointing at a real nginx
// is downloaded whole, pad files included, and the files are exact; nginx was never asked for
// a pad file.
func TestWebSeedOnlyDownload(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "webonly", padFiles, 64<<10, 21)
	ng := testenv.StartNginx(t, "127.0.0.61", src)
	mi.WebSeeds = []string{ng.URL} // ends in "/": the torrent's name and paths are appended
	l, dst := webLeecher(t, "127.0.0.62", mi, nil, true)
	waitComplete(t, l, 30*time.Second)
	sameFiles(t, mi, src, dst, notPad(mi))
	if log := ng.AccessLog(); strings.Contains(log, ".pad") {
		t.Errorf("nginx was asked for a pad file:\n%s", log)
	}
	ws := l.t.WebSeeds()
	if len(ws) != 1 || ws[0].Downloaded < mi.Info.Length-(64<<10) {
		t.Errorf("web seed stats %+v", ws)
	}
}

// TestWebSeedSingleFileReader: a single-file torrent with a url-list URL that names the file
// itself is read at random offsets through a Reader (no background download): only what is
// read is fetched, first from the web seed.
func TestWebSeedSingleFileReader(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "single.bin", []testswarm.File{{Size: 4<<20 + 5}}, 256<<10, 22)
	ng := testenv.StartNginx(t, "127.0.0.63", src)
	mi.WebSeeds = []string{ng.URL + "single.bin"}
	l, _ := webLeecher(t, "127.0.0.64", mi, nil, false)
	want, err := os.ReadFile(filepath.Join(src, "single.bin"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, off := range []int64{3 << 20, 17, 4 << 20} {
		buf := make([]byte, 4096)
		n, err := r.ReadAt(ctx, buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
		if string(buf[:n]) != string(want[off:off+int64(n)]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
	if s := l.t.Stats(); s.Verified > 4 {
		t.Errorf("%d pieces verified for three small reads", s.Verified)
	}
}

// corruptingServer serves the files under root like a BEP 19 web seed but flips a byte in every
// answer, and counts its requests.
func corruptingServer(t *testing.T, root string) (*httptest.Server, *atomic.Int64) {
	requests := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		rec := httptest.NewRecorder()
		http.FileServer(http.Dir(root)).ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if len(body) > 0 {
			body[len(body)/2] ^= 0x55
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, requests
}

// TestWebSeedCorruptBesideGood: a web seed that returns corrupt bytes beside a good one costs
// some pieces but is dropped, and the download completes exact from the good one.
func TestWebSeedCorruptBesideGood(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "mixed", padFiles, 64<<10, 23)
	bad, _ := corruptingServer(t, src)
	ng := testenv.StartNginx(t, "127.0.0.65", src)
	mi.WebSeeds = []string{bad.URL + "/", ng.URL}
	l, dst := webLeecher(t, "127.0.0.66", mi, nil, true)
	waitComplete(t, l, 60*time.Second)
	sameFiles(t, mi, src, dst, notPad(mi))
	var badStats *WebSeedStats
	for _, s := range l.t.WebSeeds() {
		if strings.HasPrefix(s.Name, bad.URL) {
			badStats = &s
		}
	}
	if badStats == nil || badStats.BadPieces == 0 {
		t.Fatalf("the corrupting web seed was never blamed: %+v", l.t.WebSeeds())
	}
	if s := l.t.Stats(); s.HashFailures == 0 {
		t.Error("no hash failure counted")
	}
}

// TestWebSeedWithPeers: a web seed and two peers together: both kinds of source deliver
// blocks, and the files are exact.
func TestWebSeedWithPeers(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "both", []testswarm.File{{Path: []string{"f"}, Size: 12 << 20}}, 256<<10, 24)
	ng := testenv.StartNginx(t, "127.0.0.67", src)
	var peers []netip.AddrPort
	for _, ip := range []string{"127.0.0.68", "127.0.0.69"} {
		peers = append(peers, startSeeder(t, ip, mi, src).c.Addr())
	}
	mi2 := *mi
	mi2.WebSeeds = []string{ng.URL}
	l, dst := webLeecher(t, "127.0.0.70", &mi2, peers, false)
	waitPeers(t, l, 2)
	l.t.SetBackground(true)
	waitComplete(t, l, 60*time.Second)
	sameFiles(t, mi, src, dst, nil)
	ws := l.t.WebSeeds()
	s := l.t.Stats()
	if len(ws) != 1 || ws[0].Downloaded == 0 {
		t.Errorf("the web seed delivered nothing: %+v", ws)
	}
	if ws[0].Downloaded >= mi.Info.Length {
		t.Errorf("the peers delivered nothing: web seed %d of %d bytes (stats %+v)", ws[0].Downloaded, mi.Info.Length, s)
	}
}

// TestNoWebSeeds: with Config.NoWebSeeds a torrent's web seeds are never asked.
func TestNoWebSeeds(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "off", []testswarm.File{{Path: []string{"f"}, Size: 1 << 20}}, 64<<10, 25)
	srv, requests := corruptingServer(t, src)
	mi.WebSeeds = []string{srv.URL + "/"}
	c, err := NewClient(Config{ListenAddr: "127.0.0.71:0", Logger: testLogger(t), NoWebSeeds: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst, err := cache.Open(&mi.Info, cache.Options{DataDir: t.TempDir(), RecordPath: filepath.Join(t.TempDir(), "rec")})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	tor, err := c.AddTorrent(mi, TorrentOptions{Storage: dst, NoTrackers: true, Background: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := requests.Load(); n != 0 || len(tor.WebSeeds()) != 0 {
		t.Fatalf("web seed asked %d times with NoWebSeeds", n)
	}
}

// notPad selects the files of mi that are not pad files (those are never written to disk).
func notPad(mi *torrentfile.Metainfo) func(int) bool {
	return func(i int) bool { return !mi.Info.Files[i].Padding }
}

// bep17Server answers BEP 17 requests (?info_hash=&piece=N[&ranges=a-b]) from a seeded
// storage; the first request of all gets "503 retry after 1" (the busy answer of the BEP),
// and requests for another info hash get 404.
func bep17Server(t *testing.T, mi *torrentfile.Metainfo, seed *cache.Storage) (*httptest.Server, *atomic.Int64) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "1")
			return
		}
		q := r.URL.Query()
		if q.Get("info_hash") != string(mi.InfoHash[:]) {
			http.NotFound(w, r)
			return
		}
		piece, err := strconv.Atoi(q.Get("piece"))
		if err != nil || piece < 0 || piece >= mi.Info.NumPieces() {
			http.Error(w, "bad piece", http.StatusBadRequest)
			return
		}
		data, err := seed.ReadPiece(piece, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if rg := q.Get("ranges"); rg != "" {
			var a, b int
			if _, err := fmt.Sscanf(rg, "%d-%d", &a, &b); err != nil || a < 0 || b < a || b >= len(data) {
				http.Error(w, "bad ranges", http.StatusBadRequest)
				return
			}
			data = data[a : b+1]
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// TestHTTPSeedDownload: a torrent whose only source is a BEP 17 HTTP seed is downloaded whole
// and exact, after the seed's "retry after" answer.
func TestHTTPSeedDownload(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "bep17", padFiles, 64<<10, 26)
	srv, requests := bep17Server(t, mi, testswarm.OpenSeed(t, mi, src))
	mi.HTTPSeeds = []string{srv.URL + "/seed"}
	l, dst := webLeecher(t, "127.0.0.72", mi, nil, true)
	waitComplete(t, l, 30*time.Second)
	sameFiles(t, mi, src, dst, notPad(mi))
	if requests.Load() < 2 {
		t.Fatalf("%d requests", requests.Load())
	}
	ws := l.t.WebSeeds()
	if len(ws) != 1 || ws[0].Errors == 0 {
		t.Errorf("the 503 was not recorded: %+v", ws)
	}
}
