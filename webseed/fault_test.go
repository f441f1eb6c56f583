package webseed

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// faultServer serves one single-file torrent's bytes; the first path element picks how.
func faultServer(t *testing.T, ip string, tt *testTorrent) string {
	data := tt.stream
	modTime := time.Unix(1700000000, 0)
	serve := func(w http.ResponseWriter, r *http.Request, b []byte) {
		http.ServeContent(w, r, "f.bin", modTime, bytes.NewReader(b))
	}
	corrupt := bytes.Clone(data)
	for i := range corrupt {
		if i%1000 == 0 {
			corrupt[i] ^= 0xFF
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) { serve(w, r, data) })
	mux.HandleFunc("/corrupt", func(w http.ResponseWriter, r *http.Request) { serve(w, r, corrupt) })
	// Announces the right length, then closes the connection 10 bytes short.
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		first, last := parseTestRange(t, r)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first : last-9])
	})
	// Announces 10 bytes more than asked for.
	mux.HandleFunc("/longlen", func(w http.ResponseWriter, r *http.Request) {
		first, last := parseTestRange(t, r)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("Content-Length", strconv.FormatInt(last-first+11, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first : last+11])
	})
	// No Content-Length (chunked), and more bytes than asked for.
	mux.HandleFunc("/chunkedlong", func(w http.ResponseWriter, r *http.Request) {
		first, last := parseTestRange(t, r)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush()
		w.Write(data[first : last+6])
	})
	// The right length, but a Content-Range one byte off.
	mux.HandleFunc("/shifted", func(w http.ResponseWriter, r *http.Request) {
		first, last := parseTestRange(t, r)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first+1, last+1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first+1 : last+2])
	})
	// Ignores Range: always 200 and the whole file.
	mux.HandleFunc("/norange", func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/busydate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	})
	// Sends half of the range, then nothing until the client hangs up.
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		first, last := parseTestRange(t, r)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first : first+(last-first)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	// Sends no headers until the client hangs up.
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	// /r/N redirects N times, then serves the file; /ftp and /file redirect out of http.
	mux.HandleFunc("/r/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			serve(w, r, data)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
	})
	mux.HandleFunc("/ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://"+r.Host+"/f.bin", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	return startServer(t, ip, mux).URL
}

// parseTestRange reads the one "bytes=a-b" range a Source sends.
func parseTestRange(t *testing.T, r *http.Request) (first, last int64) {
	a, b, ok := strings.Cut(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		t.Errorf("bad Range header %q", r.Header.Get("Range"))
	}
	return first, last
}

func singleTorrent(t testing.TB) *testTorrent {
	return makeTorrent(t, "f.bin", 32768, false, []testFile{{path: []string{"f.bin"}, size: 100000}})
}

// TestFaultsBackOff sends each kind of bad answer and checks the error, that the source backs
// off (not Ready until the back-off ends, no request sent meanwhile) and that the back-off
// ends.
func TestFaultsBackOff(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	c := newTestClient(t, testConfig(t))
	for _, tc := range []struct {
		path  string
		piece int
		want  error
	}{
		{"/short", 0, ErrWrongLength},
		{"/longlen", 0, ErrWrongLength},
		{"/chunkedlong", 0, ErrWrongLength},
		{"/shifted", 1, ErrWrongLength},
		{"/norange", 1, ErrNoRanges},
		{"/broken", 0, &StatusError{Code: 500}},
		{"/nothere", 0, &StatusError{Code: 404}},
	} {
		s := newSource(t, c, tt.layout(), URLList, base+tc.path)
		before := time.Now()
		err := s.Fetch(t.Context(), tc.piece, 0, make([]byte, 32768))
		var se *StatusError
		if want, ok := tc.want.(*StatusError); ok {
			if !errors.As(err, &se) || se.Code != want.Code {
				t.Errorf("%s: %v, want HTTP %d", tc.path, err, want.Code)
			}
		} else if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.path, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "webseed "+base+tc.path+": piece ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q does not name the source and piece on one line", tc.path, err)
		}
		st := s.Stats()
		if st.Failures != 1 || st.Errors != 1 || st.RetryAt.Before(before.Add(50*time.Millisecond)) || s.Ready(time.Now()) {
			t.Errorf("%s: not backed off: %+v", tc.path, st)
		}
		if err := s.Fetch(t.Context(), 0, 0, make([]byte, 10)); !errors.Is(err, ErrNotReady) {
			t.Errorf("%s: fetch while backing off: %v", tc.path, err)
		}
		if !s.Ready(st.RetryAt) {
			t.Errorf("%s: not ready when the back-off ends", tc.path)
		}
	}
}

// TestBackoffDoublesAndResets: consecutive failures double the back-off up to BackoffMax; a
// success clears it.
func TestBackoffDoublesAndResets(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	c := newTestClient(t, testConfig(t)) // 50 ms doubling to at most 200 ms
	s := newSource(t, c, tt.layout(), URLList, base+"/broken")
	for i, want := range []time.Duration{50, 100, 200, 200} {
		waitReady(t, s)
		before := time.Now()
		if err := s.Fetch(t.Context(), 0, 0, make([]byte, 10)); err == nil {
			t.Fatal("a 500 was accepted")
		}
		after := time.Now()
		st := s.Stats()
		want *= time.Millisecond
		if st.RetryAt.Before(before.Add(want)) || st.RetryAt.After(after.Add(want)) {
			t.Errorf("failure %d: back-off %v, want %v", i+1, st.RetryAt.Sub(before), want)
		}
	}
	good := newSource(t, c, tt.layout(), URLList, base+"/good")
	good.h.failures = 3 // as if it had failed before
	checkPiece(t, good, tt, 0)
	if st := good.Stats(); st.Failures != 0 {
		t.Errorf("a success left %d failures", st.Failures)
	}
}

func waitReady(t *testing.T, s *Source) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !s.Ready(time.Now()); {
		if time.Now().After(deadline) {
			t.Fatalf("%s never ready: %+v", s.Name(), s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRetryAfter: a 503 with Retry-After (seconds or a date) holds the source back for that
// long without counting as a failure of the server.
func TestRetryAfter(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	c := newTestClient(t, testConfig(t))
	for _, tc := range []struct {
		path string
		wait time.Duration
	}{{"/busy", 7 * time.Second}, {"/busydate", 90 * time.Second}} {
		s := newSource(t, c, tt.layout(), URLList, base+tc.path)
		before := time.Now()
		err := s.Fetch(t.Context(), 0, 0, make([]byte, 100))
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 503 || se.RetryAfter < tc.wait-2*time.Second || se.RetryAfter > tc.wait {
			t.Errorf("%s: %v", tc.path, err)
		}
		st := s.Stats()
		if st.Failures != 0 || st.RetryAt.Before(before.Add(tc.wait-2*time.Second)) || st.RetryAt.After(time.Now().Add(tc.wait)) {
			t.Errorf("%s: %+v, want a wait of %v and no failure", tc.path, st, tc.wait)
		}
		if s.Ready(before.Add(tc.wait - 2*time.Second)) {
			t.Errorf("%s: ready before Retry-After", tc.path)
		}
	}
}

// TestBadPiecesDrop: a server sending corrupt bytes gets them through Fetch (the caller
// hashes), and after MaxBadPieces reports it is dropped for good, while a good server of the
// same torrent serves every piece.
func TestBadPiecesDrop(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	cfg := testConfig(t)
	cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, time.Millisecond
	c := newTestClient(t, cfg)
	good := newSource(t, c, tt.layout(), URLList, base+"/good")
	bad := newSource(t, c, tt.layout(), URLList, base+"/corrupt")
	for i := range tt.mi.Info.NumPieces() {
		checkPiece(t, good, tt, i)
	}
	for i := range DefaultMaxBadPieces {
		waitReady(t, bad)
		buf := make([]byte, tt.mi.Info.PieceSize(i))
		if err := bad.Fetch(t.Context(), i, 0, buf); err != nil {
			t.Fatal(err)
		}
		if sha1.Sum(buf) == tt.mi.Info.Pieces[i] {
			t.Fatal("corrupt piece passes its hash")
		}
		if dropped := bad.ReportBadPiece(); dropped != (i == DefaultMaxBadPieces-1) {
			t.Fatalf("bad piece %d: dropped %v", i+1, dropped)
		}
	}
	time.Sleep(5 * time.Millisecond) // past any back-off
	if bad.Ready(time.Now()) || !bad.Stats().Dropped {
		t.Errorf("dropped source still ready: %+v", bad.Stats())
	}
	if err := bad.Fetch(t.Context(), 0, 0, make([]byte, 10)); !errors.Is(err, ErrDropped) {
		t.Errorf("fetch from a dropped source: %v", err)
	}
	if !good.Ready(time.Now()) || good.Stats().Rate <= 0 {
		t.Errorf("good source: %+v", good.Stats())
	}
}

// TestStalls: a body that stops and a server that never answers are both given up after
// their timeout and back the source off; a fetch cancelled by the caller is not held
// against the server.
func TestStalls(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	cfg := testConfig(t)
	cfg.StallTimeout = 200 * time.Millisecond
	cfg.HeaderTimeout = 150 * time.Millisecond
	c := newTestClient(t, cfg)
	for _, path := range []string{"/stall", "/silent"} {
		s := newSource(t, c, tt.layout(), URLList, base+path)
		start := time.Now()
		err := s.Fetch(t.Context(), 0, 0, make([]byte, 32768))
		if err == nil || time.Since(start) > 2*time.Second {
			t.Errorf("%s: %v after %v", path, err, time.Since(start))
		}
		if path == "/stall" && !errors.Is(err, ErrStalled) {
			t.Errorf("%s: %v, want ErrStalled", path, err)
		}
		if st := s.Stats(); st.Failures != 1 || s.Ready(time.Now()) {
			t.Errorf("%s: not backed off: %+v", path, st)
		}
	}

	s := newSource(t, c, tt.layout(), URLList, base+"/stall")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Fetch(ctx, 0, 0, make([]byte, 32768)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled fetch: %v", err)
	}
	if st := s.Stats(); st.Errors != 0 || st.Inflight != 0 || !s.Ready(time.Now()) {
		t.Errorf("a cancel was held against the source: %+v", st)
	}
}

// TestInflightBound: with MaxInflight fetches in flight the source is not Ready and a further
// Fetch is refused without a request.
func TestInflightBound(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	cfg := testConfig(t)
	cfg.MaxInflight = 1
	c := newTestClient(t, cfg)
	s := newSource(t, c, tt.layout(), URLList, base+"/stall")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Fetch(ctx, 0, 0, make([]byte, 32768)) }()
	for s.Stats().Inflight == 0 {
		time.Sleep(time.Millisecond)
	}
	if s.Ready(time.Now()) {
		t.Error("ready with MaxInflight fetches in flight")
	}
	if err := s.Fetch(t.Context(), 1, 0, make([]byte, 10)); !errors.Is(err, ErrNotReady) {
		t.Errorf("fetch beyond MaxInflight: %v", err)
	}
	cancel()
	<-done
	if !s.Ready(time.Now()) {
		t.Errorf("not ready after the fetch ended: %+v", s.Stats())
	}
}

// TestRedirects: redirects are followed up to MaxRedirects with the Range kept, and refused
// beyond, or to a scheme other than http(s).
func TestRedirects(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	cfg := testConfig(t)
	cfg.MaxRedirects = 2
	c := newTestClient(t, cfg)
	checkPiece(t, newSource(t, c, tt.layout(), URLList, base+"/r/2"), tt, 1)
	for _, path := range []string{"/r/3", "/ftp", "/file"} {
		s := newSource(t, c, tt.layout(), URLList, base+path)
		if err := s.Fetch(t.Context(), 0, 0, make([]byte, 100)); !errors.Is(err, ErrRedirect) {
			t.Errorf("%s: %v, want ErrRedirect", path, err)
		}
		if s.Ready(time.Now()) {
			t.Errorf("%s: not backed off", path)
		}
	}
}

// TestWholeFile200: a server that ignores Range serves a request for the whole file.
func TestWholeFile200(t *testing.T) {
	tt := singleTorrent(t)
	base := faultServer(t, "127.0.0.194", tt)
	c := newTestClient(t, testConfig(t))
	s := newSource(t, c, tt.layout(), URLList, base+"/norange")
	all := make([]byte, tt.mi.Info.Length)
	if err := s.Fetch(t.Context(), 0, 0, all); err != nil || !bytes.Equal(all, tt.stream) {
		t.Fatalf("whole file from a 200: %v", err)
	}
}
