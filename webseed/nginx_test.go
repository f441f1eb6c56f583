package webseed

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
)

// padTorrent is a multi-file torrent with pad files (one aligning a file to a piece, one of
// 7 bytes inside a piece), an empty file, pieces spanning up to four files, and names that
// need escaping in a URL.
func padTorrent(t testing.TB) *testTorrent {
	return makeTorrent(t, "multi dir", 16384, true, []testFile{
		{path: []string{"a.bin"}, size: 10000},
		{path: []string{".pad", "6384"}, size: 6384, pad: true},
		{path: []string{"sub", "b ü#?.bin"}, size: 40000},
		{path: []string{"empty.txt"}, size: 0},
		{path: []string{"c%20+;.bin"}, size: 5000},
		{path: []string{".pad", "7"}, size: 7, pad: true},
		{path: []string{"d.bin"}, size: 30000},
	})
}

// TestNginxMultiFile fetches every piece of a multi-file torrent with pad files from a real
// nginx, through base URLs with and without a trailing slash, and checks each SHA-1; then
// sub-piece blocks and a run of the whole torrent against the byte stream. nginx's log shows
// that no pad file was asked for and that requests share kept-alive connections.
func TestNginxMultiFile(t *testing.T) {
	tt := padTorrent(t)
	root := t.TempDir()
	tt.writeFiles(t, root)
	ng := testenv.StartNginx(t, "127.0.0.191", root)
	c := newTestClient(t, testConfig(t))
	l := tt.layout()
	in := &tt.mi.Info
	if in.NumPieces() != 6 || !in.Files[1].Padding || !in.Files[5].Padding {
		t.Fatalf("test torrent: %d pieces, files %+v", in.NumPieces(), in.Files)
	}
	for _, base := range []string{ng.URL, strings.TrimSuffix(ng.URL, "/")} {
		s := newSource(t, c, l, URLList, base)
		for i := range in.NumPieces() {
			checkPiece(t, s, tt, i)
		}
		// Blocks of 5000 bytes, which cross piece and file boundaries.
		for off := int64(0); off < in.Length; off += 5000 {
			n := min(5000, in.Length-off)
			buf := bytes.Repeat([]byte{0xEE}, int(n)) // pad bytes must be written as zeros
			piece := int(off / in.PieceLength)
			if err := s.Fetch(t.Context(), piece, off-in.PieceOffset(piece), buf); err != nil {
				t.Fatalf("%s: bytes %d+%d: %v", base, off, n, err)
			}
			if !bytes.Equal(buf, tt.stream[off:off+n]) {
				t.Fatalf("%s: bytes %d+%d differ", base, off, n)
			}
		}
		all := make([]byte, in.Length)
		if err := s.Fetch(t.Context(), 0, 0, all); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(all, tt.stream) {
			t.Fatalf("%s: the whole torrent differs", base)
		}
		if st := s.Stats(); st.Errors != 0 || st.Rate <= 0 || st.Downloaded != 2*in.Length+in.Length || st.Latency <= 0 {
			t.Errorf("%s: stats %+v", base, st)
		}
	}
	log := ng.AccessLog()
	if strings.Contains(log, ".pad") || strings.Contains(log, " 404 ") || strings.Contains(log, " 416 ") {
		t.Errorf("nginx log shows a pad file or a failed request:\n%s", log)
	}
	if !strings.Contains(log, `/multi%20dir/sub/b%20%C3%BC%23%3F.bin`) || !strings.Contains(log, `/multi%20dir/c%2520+%3B.bin`) {
		t.Errorf("escaped paths not in nginx log:\n%s", log)
	}
	requests, conns := logConnections(log)
	if requests < 40 || conns > 2 {
		t.Errorf("%d requests over %d connections: keep-alive is not used", requests, conns)
	}
}

// logConnections counts the requests and the distinct connections in a testenv.Nginx log.
func logConnections(log string) (requests, conns int) {
	seen := map[string]bool{}
	for line := range strings.Lines(log) {
		conn, _, _ := strings.Cut(line, " ")
		seen[conn] = true
		requests++
	}
	return requests, len(seen)
}

// TestNginxSingleFile serves a single-file torrent under another name: a URL without a
// trailing slash is used as is, one with a slash gets the torrent's name appended.
func TestNginxSingleFile(t *testing.T) {
	tt := makeTorrent(t, "movie.bin", 32768, false, []testFile{{path: []string{"movie.bin"}, size: 100000}})
	root := t.TempDir()
	tt.writeFiles(t, root+"/files")
	ng := testenv.StartNginx(t, "127.0.0.192", root)
	// The same bytes under a name the torrent does not know.
	other := root + "/elsewhere/other name.iso"
	copyFile(t, root+"/files/movie.bin", other)
	c := newTestClient(t, testConfig(t))
	l := tt.layout()
	for _, u := range []string{ng.URL + "elsewhere/other%20name.iso", ng.URL + "files/"} {
		s := newSource(t, c, l, URLList, u)
		for i := range tt.mi.Info.NumPieces() {
			checkPiece(t, s, tt, i)
		}
		// The whole file in one range.
		all := make([]byte, tt.mi.Info.Length)
		if err := s.Fetch(t.Context(), 0, 0, all); err != nil || !bytes.Equal(all, tt.stream) {
			t.Fatalf("%s: whole file: %v", u, err)
		}
	}
	// A trailing-slash URL of a file that is not there: 404, backed off.
	s := newSource(t, c, l, URLList, ng.URL+"missing/")
	err := s.Fetch(t.Context(), 0, 0, make([]byte, 100))
	if se := (*StatusError)(nil); !errors.As(err, &se) || se.Code != 404 || s.Ready(time.Now()) {
		t.Errorf("missing file: %v, ready %v", err, s.Ready(time.Now()))
	}
	waitLog(t, ng, `404 "GET /missing/movie.bin HTTP/1.1" "bytes=0-99"`)
}

// TestNginxConcurrent runs fetches from several goroutines at once against nginx, with two
// connections allowed per host: every piece is right, and nginx saw at most two connections.
func TestNginxConcurrent(t *testing.T) {
	tt := makeTorrent(t, "big", 16384, true, []testFile{
		{path: []string{"x"}, size: 300000}, {path: []string{"y"}, size: 212345},
	})
	root := t.TempDir()
	tt.writeFiles(t, root)
	ng := testenv.StartNginx(t, "127.0.0.193", root)
	cfg := testConfig(t)
	cfg.MaxConnsPerHost = 2
	cfg.MaxInflight = 8 // more fetches than connections: they queue for the two
	c := newTestClient(t, cfg)
	s := newSource(t, c, tt.layout(), URLList, ng.URL)
	var wg sync.WaitGroup
	errs := make(chan error, tt.mi.Info.NumPieces())
	sem := make(chan struct{}, cfg.MaxInflight)
	for i := range tt.mi.Info.NumPieces() {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			buf := make([]byte, tt.mi.Info.PieceSize(i))
			if err := s.Fetch(t.Context(), i, 0, buf); err != nil {
				errs <- err
			} else if sha1.Sum(buf) != tt.mi.Info.Pieces[i] {
				errs <- errors.New("piece fails its hash")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	requests, conns := logConnections(ng.AccessLog())
	if requests < tt.mi.Info.NumPieces() || conns > 2 {
		t.Errorf("%d requests over %d connections, want at most 2", requests, conns)
	}
}

// waitLog waits for a line containing want in nginx's access log, which nginx writes once
// the answer is sent, so possibly after the client has read it.
func waitLog(t *testing.T, ng *testenv.Nginx, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(ng.AccessLog(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in nginx's log:\n%s", want, ng.AccessLog())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkNginxFetch reads a 64 MiB single-file torrent from nginx in 1 MiB pieces with four
// fetches in flight (MB/s is the figure to compare with curl of the same file).
func BenchmarkNginxFetch(b *testing.B) {
	const size, pieceLen = 64 << 20, 1 << 20
	tt := makeTorrent(b, "bench.bin", pieceLen, false, []testFile{{path: []string{"bench.bin"}, size: size}})
	root := b.TempDir()
	tt.writeFiles(b, root)
	ng := testenv.StartNginx(b, "127.0.0.196", root)
	c := newTestClient(b, testConfig(b))
	s := newSource(b, c, tt.layout(), URLList, ng.URL)
	const workers = 4
	bufs := make([][]byte, workers)
	for i := range bufs {
		bufs[i] = make([]byte, pieceLen)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for p := w; p < tt.mi.Info.NumPieces(); p += workers {
					if err := s.Fetch(b.Context(), p, 0, bufs[w]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
