package webseed

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// seedScript is a BEP 17 endpoint for one torrent, as the spec describes it: it checks the
// info hash, maps piece and ranges to the torrent's bytes and answers 200 with the ranges
// appended, or 503 with the seconds to wait when busy.
type seedScript struct {
	t        *testing.T
	tt       *testTorrent
	busyBody string // when set, every answer is 503 with this body

	mu      sync.Mutex
	queries []string
}

func (h *seedScript) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.queries = append(h.queries, r.URL.RawQuery)
	h.mu.Unlock()
	if h.busyBody != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(h.busyBody))
		return
	}
	q := r.URL.Query()
	in := &h.tt.mi.Info
	if q.Get("info_hash") != string(h.tt.mi.InfoHash[:]) {
		http.Error(w, "unknown info hash", http.StatusNotFound)
		return
	}
	piece, err := strconv.Atoi(q.Get("piece"))
	if err != nil || piece < 0 || piece >= in.NumPieces() {
		http.Error(w, "bad piece", http.StatusBadRequest)
		return
	}
	data := h.tt.stream[in.PieceOffset(piece) : in.PieceOffset(piece)+in.PieceSize(piece)]
	var out []byte
	if !q.Has("ranges") {
		out = data
	}
	for rng := range strings.SplitSeq(q.Get("ranges"), ",") {
		if rng == "" {
			continue
		}
		a, b, _ := strings.Cut(rng, "-")
		first, err1 := strconv.Atoi(a)
		last, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || first > last || last >= len(data) {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		out = append(out, data[first:last+1]...)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}

// TestHTTPSeed fetches every piece, sub-piece ranges and a run over several pieces from a
// BEP 17 script, and checks the requests it got.
func TestHTTPSeed(t *testing.T) {
	tt := makeTorrent(t, "hs", 16384, true, []testFile{
		{path: []string{"a"}, size: 20000}, {path: []string{".pad", "12768"}, size: 12768, pad: true},
		{path: []string{"b"}, size: 30001},
	})
	script := &seedScript{t: t, tt: tt}
	srv := startServer(t, "127.0.0.195", script)
	c := newTestClient(t, testConfig(t))
	in := &tt.mi.Info
	for _, u := range []string{srv.URL + "/seed.php", srv.URL + "/seed.php?id=5"} {
		s := newSource(t, c, tt.layout(), HTTPSeed, u)
		for i := range in.NumPieces() {
			checkPiece(t, s, tt, i)
		}
		buf := make([]byte, 40000) // piece 0 byte 1000 into piece 2
		if err := s.Fetch(t.Context(), 0, 1000, buf); err != nil || !bytes.Equal(buf, tt.stream[1000:41000]) {
			t.Fatalf("%s: run over pieces: %v", u, err)
		}
	}
	hash := escapeBytes(tt.mi.InfoHash[:])
	want := []string{
		"info_hash=" + hash + "&piece=0", "info_hash=" + hash + "&piece=1", "info_hash=" + hash + "&piece=2",
		"info_hash=" + hash + "&piece=3", "info_hash=" + hash + "&piece=0&ranges=1000-16383",
		"info_hash=" + hash + "&piece=1", "info_hash=" + hash + "&piece=2&ranges=0-8231",
	}
	script.mu.Lock()
	got := script.queries
	script.mu.Unlock()
	if len(got) != 2*len(want) {
		t.Fatalf("queries %q", got)
	}
	for i, q := range got {
		w := want[i%len(want)]
		if i >= len(want) {
			w = "id=5&" + w
		}
		if q != w {
			t.Errorf("query %d: %q, want %q", i, q, w)
		}
	}
}

// TestHTTPSeedBusy: a 503 whose body is the seconds to wait holds the source back that long,
// and a 503 without a usable body is an error that backs off.
func TestHTTPSeedBusy(t *testing.T) {
	tt := singleTorrent(t)
	c := newTestClient(t, testConfig(t))
	for _, tc := range []struct {
		body    string
		wait    time.Duration
		failure int
	}{{"30", 30 * time.Second, 0}, {"retry after 12 seconds\n", 12 * time.Second, 0}, {"<html>busy</html>", 0, 1}} {
		srv := startServer(t, "127.0.0.195", &seedScript{t: t, tt: tt, busyBody: tc.body})
		s := newSource(t, c, tt.layout(), HTTPSeed, srv.URL)
		before := time.Now()
		err := s.Fetch(t.Context(), 1, 0, make([]byte, 32768))
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 503 || se.RetryAfter != tc.wait {
			t.Errorf("body %q: %v, want a wait of %v", tc.body, err, tc.wait)
		}
		st := s.Stats()
		if st.Failures != tc.failure || st.RetryAt.Before(before.Add(tc.wait)) || s.Ready(time.Now()) {
			t.Errorf("body %q: %+v", tc.body, st)
		}
	}
}

// TestHTTPSeedWrongHash: a script that does not know the torrent answers 404; a script sending
// another piece's bytes is caught by the caller's hash.
func TestHTTPSeedWrongHash(t *testing.T) {
	tt := singleTorrent(t)
	other := makeTorrent(t, "other.bin", 32768, false, []testFile{{path: []string{"other.bin"}, size: 99999}})
	srv := startServer(t, "127.0.0.195", &seedScript{t: t, tt: other})
	c := newTestClient(t, testConfig(t))
	s := newSource(t, c, tt.layout(), HTTPSeed, srv.URL)
	var se *StatusError
	if err := s.Fetch(t.Context(), 0, 0, make([]byte, 32768)); !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("unknown info hash: %v", err)
	}
	// Same info hash announced, other bytes: the script of "other" answering for tt.
	other.mi.InfoHash = tt.mi.InfoHash
	s = newSource(t, c, tt.layout(), HTTPSeed, srv.URL)
	buf := make([]byte, 32768)
	if err := s.Fetch(t.Context(), 0, 0, buf); err != nil {
		t.Fatal(err)
	}
	if sha1.Sum(buf) == tt.mi.Info.Pieces[0] {
		t.Error("wrong bytes pass the hash")
	}
}
