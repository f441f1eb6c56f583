package httpserve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/httpserve"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/status"
)

var showFiles = []testswarm.File{
	{Path: []string{"movie.mkv"}, Size: 8_000_001},
	{Path: []string{"extras", "song.mp3"}, Size: 200_000},
	{Path: []string{"extras", "notes.txt"}, Size: 12_345},
	{Path: []string{"odd name #1?.mp4"}, Size: 70_000},
}

// TestRangesWithCurl: on a cold torrent, HEAD fetches nothing and answers the size, type and
// ETag; curl's range requests at random offsets get exactly the source's bytes; a range past
// the end is 416; If-Range with the ETag gets the range, with another one the whole file.
func TestRangesWithCurl(t *testing.T) {
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show", showFiles, 32<<10, 21)
	s := startSwarm(t, mi, src, "127.0.0.186", "127.0.0.187", httpserve.Options{MaxReadahead: 256 << 10})
	movie := s.source(t, "Show/movie.mkv")
	url := s.url + "/Show/movie.mkv"

	head := curl(t, "-I", url)
	head.mustBe(t, 200, "HEAD")
	etag := fmt.Sprintf(`"%s-0"`, mi.InfoHash.Hex())
	if got := head.headerValue("Content-Length"); got != fmt.Sprint(len(movie)) {
		t.Errorf("HEAD Content-Length %q, want %d", got, len(movie))
	}
	if got := head.headerValue("Content-Type"); got != "video/x-matroska" {
		t.Errorf("HEAD Content-Type %q", got)
	}
	if got := head.headerValue("ETag"); got != etag {
		t.Errorf("HEAD ETag %q, want %q", got, etag)
	}
	if got := head.headerValue("Accept-Ranges"); got != "bytes" {
		t.Errorf("HEAD Accept-Ranges %q", got)
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.st.VerifiedCount(); n != 0 {
		t.Errorf("a HEAD fetched %d pieces", n)
	}

	rng := rand.New(rand.NewPCG(21, 1))
	for i := range 12 {
		off := rng.IntN(len(movie))
		end := min(len(movie)-1, off+rng.IntN(100_000))
		r := curl(t, "-r", fmt.Sprintf("%d-%d", off, end), url)
		r.mustBe(t, 206, fmt.Sprintf("range %d: %d-%d", i, off, end))
		if !bytes.Equal(r.body, movie[off:end+1]) {
			t.Fatalf("range %d-%d: %d bytes differ from the source", off, end, len(r.body))
		}
		if got, want := r.headerValue("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", off, end, len(movie)); got != want {
			t.Errorf("Content-Range %q, want %q", got, want)
		}
	}
	// A suffix range (a player reading the index at the end) and a whole file.
	r := curl(t, "-r", "-5000", url)
	r.mustBe(t, 206, "suffix range")
	if !bytes.Equal(r.body, movie[len(movie)-5000:]) {
		t.Fatal("suffix range differs from the source")
	}
	r = curl(t, s.url+"/Show/extras/notes.txt")
	r.mustBe(t, 200, "whole file")
	if !bytes.Equal(r.body, s.source(t, "Show/extras/notes.txt")) {
		t.Fatal("notes.txt differs from the source")
	}
	if ct := r.headerValue("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("notes.txt Content-Type %q", ct)
	}
	r = curl(t, s.url+"/Show/odd%20name%20%231%3F.mp4")
	r.mustBe(t, 200, "a name that needs escaping")
	if !bytes.Equal(r.body, s.source(t, "Show/odd name #1?.mp4")) {
		t.Fatal("odd name differs from the source")
	}

	curl(t, "-r", fmt.Sprintf("%d-", len(movie)+10), url).mustBe(t, 416, "range past the end")
	r = curl(t, "-r", "100-199", "-H", "If-Range: "+etag, url)
	r.mustBe(t, 206, "If-Range with the ETag")
	if !bytes.Equal(r.body, movie[100:200]) {
		t.Error("If-Range range differs from the source")
	}
	r = curl(t, "-r", "100-199", "-H", `If-Range: "other"`, s.url+"/Show/extras/song.mp3")
	r.mustBe(t, 200, "If-Range with another ETag")
	if !bytes.Equal(r.body, s.source(t, "Show/extras/song.mp3")) {
		t.Error("If-Range with another ETag: not the whole file")
	}
	curl(t, "-H", "If-None-Match: "+etag, url).mustBe(t, 304, "If-None-Match")
	curl(t, s.url+"/Show/nope.mkv").mustBe(t, 404, "missing file")
	curl(t, s.url+"/Nope/movie.mkv").mustBe(t, 404, "missing torrent")
	// Without a password, a name that DNS could rebind to us is refused.
	curl(t, "-H", "Host: evil.example", url).mustBe(t, 421, "foreign host name")

	st := s.tor.Stats()
	t.Logf("%d of %d pieces fetched for the ranges", st.Verified, st.Pieces)
	if st.Verified == st.Pieces {
		t.Error("a few ranges fetched the whole torrent")
	}
}

// TestListingAndPlaylist: a folder lists its entries with links; the playlists hold the media
// files, and only them, as absolute URLs from the request's Host that curl can fetch.
func TestListingAndPlaylist(t *testing.T) {
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show", showFiles, 32<<10, 22)
	single := testswarm.MakeTorrent(t, src, "solo.flac", []testswarm.File{{Size: 50_000}}, 16<<10, 23)
	s := startSwarm(t, mi, src, "127.0.0.188", "127.0.0.189", httpserve.Options{})
	s2 := startSwarm(t, single, src, "127.0.0.190", "127.0.0.189", httpserve.Options{})

	r := curl(t, s.url+"/Show/")
	r.mustBe(t, 200, "listing")
	for _, want := range []string{`href="/Show/extras/"`, `href="/Show/movie.mkv"`, `href="/Show/odd%20name%20%231%3F.mp4"`, "8000001 bytes"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("listing lacks %s:\n%s", want, r.body)
		}
	}
	r = curl(t, s.url+"/Show/extras")
	r.mustBe(t, 200, "sub-folder listing")
	if !strings.Contains(string(r.body), `href="/Show/extras/song.mp3"`) || !strings.Contains(string(r.body), `href="/Show/">..`) {
		t.Errorf("sub-folder listing:\n%s", r.body)
	}

	r = curl(t, s.url+"/playlist.m3u")
	r.mustBe(t, 200, "playlist")
	want := "#EXTM3U\n" +
		"#EXTINF:-1,Show/movie.mkv\n" + s.url + "/Show/movie.mkv\n" +
		"#EXTINF:-1,Show/extras/song.mp3\n" + s.url + "/Show/extras/song.mp3\n" +
		"#EXTINF:-1,Show/odd name #1?.mp4\n" + s.url + "/Show/odd%20name%20%231%3F.mp4\n"
	if string(r.body) != want {
		t.Errorf("playlist:\n%s\nwant:\n%s", r.body, want)
	}
	if ct := r.headerValue("Content-Type"); !strings.HasPrefix(ct, "audio/x-mpegurl") {
		t.Errorf("playlist Content-Type %q", ct)
	}
	// Every URL of the playlist fetches its file.
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	got := curl(t, lines[len(lines)-1])
	got.mustBe(t, 200, "playlist URL")
	if !bytes.Equal(got.body, s.source(t, "Show/odd name #1?.mp4")) {
		t.Error("the playlist's URL fetched other bytes")
	}
	r = curl(t, s2.url+"/playlist.m3u?torrent=solo.flac")
	r.mustBe(t, 200, "one torrent's playlist")
	if want := "#EXTM3U\n#EXTINF:-1,solo.flac\n" + s2.url + "/solo.flac\n"; string(r.body) != want {
		t.Errorf("single-file playlist:\n%s\nwant:\n%s", r.body, want)
	}
	curl(t, s2.url+"/playlist.m3u?torrent=Show").mustBe(t, 404, "playlist of a torrent not served")
}

// TestAuth: with a password every path answers 401 without it or with a wrong one, and works
// with it; the playlist then carries the credentials; any host name is answered.
func TestAuth(t *testing.T) {
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show", showFiles, 32<<10, 24)
	s := startSwarm(t, mi, src, "127.0.0.191", "127.0.0.192", httpserve.Options{User: "alice", Password: "s3cret:x"})
	for _, p := range []string{"/", "/api/status", "/playlist.m3u", "/Show/", "/Show/extras/notes.txt"} {
		r := curl(t, s.url+p)
		r.mustBe(t, 401, "no credentials "+p)
		if !strings.HasPrefix(r.headerValue("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: WWW-Authenticate %q", p, r.headerValue("WWW-Authenticate"))
		}
		curl(t, "-u", "alice:wrong", s.url+p).mustBe(t, 401, "wrong password "+p)
		curl(t, "-u", "bob:s3cret:x", s.url+p).mustBe(t, 401, "wrong user "+p)
		curl(t, "-u", "alice:s3cret:x", s.url+p).mustBe(t, 200, "credentials "+p)
	}
	r := curl(t, "-u", "alice:s3cret:x", "-H", "Host: nas.example:8080", s.url+"/playlist.m3u")
	r.mustBe(t, 200, "playlist with credentials")
	if !strings.Contains(string(r.body), "http://alice:s3cret%3Ax@nas.example:8080/Show/movie.mkv\n") {
		t.Errorf("playlist URLs lack the credentials or the Host:\n%s", r.body)
	}
}

// control records the torrents the HTTP API asked to add and remove (the real add and remove
// of a running mount come with `gotfs add`).
type control struct{ added, removed []string }

func (c *control) Add(ctx context.Context, source string) (string, error) {
	if !strings.HasPrefix(source, "magnet:") {
		return "", fmt.Errorf("not a magnet link")
	}
	c.added = append(c.added, source)
	return "added", nil
}

func (c *control) Remove(ctx context.Context, name string) error {
	if name != "Show" {
		return fmt.Errorf("no torrent %s", name)
	}
	c.removed = append(c.removed, name)
	return nil
}

// TestControlAPI: POST and DELETE /api/torrents exist only with a password and a Control, want
// the password, and want JSON (a form of another site cannot post one).
func TestControlAPI(t *testing.T) {
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show", showFiles[:1], 32<<10, 25)
	ctl := &control{}
	open := startSwarm(t, mi, src, "127.0.0.193", "127.0.0.194", httpserve.Options{Control: ctl})
	body := `{"source":"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"}`
	jsonArgs := []string{"-H", "Content-Type: application/json", "--data", body}
	curl(t, append(jsonArgs, open.url+"/api/torrents")...).mustBe(t, 405, "POST without a password set")

	s := startSwarm(t, mi, src, "127.0.0.195", "127.0.0.196", httpserve.Options{User: "u", Password: "p", Control: ctl})
	api := s.url + "/api/torrents"
	curl(t, append(jsonArgs, api)...).mustBe(t, 401, "POST without credentials")
	curl(t, "-u", "u:p", "--data", body, api).mustBe(t, 415, "POST of a form")
	curl(t, "-u", "u:p", "-H", "Content-Type: application/json", "--data", `{"src":1}`, api).mustBe(t, 400, "POST of bad JSON")
	r := curl(t, append([]string{"-u", "u:p"}, append(jsonArgs, api)...)...)
	r.mustBe(t, 201, "POST")
	if !strings.Contains(string(r.body), `"name": "added"`) || len(ctl.added) != 1 {
		t.Errorf("POST: %s; added %q", r.body, ctl.added)
	}
	curl(t, "-u", "u:p", "-H", "Content-Type: application/json", "--data", `{"source":"/no/such.torrent"}`, api).mustBe(t, 422, "POST the control refuses")
	curl(t, "-X", "DELETE", api+"/Show").mustBe(t, 401, "DELETE without credentials")
	curl(t, "-u", "u:p", "-X", "DELETE", api+"/Show").mustBe(t, 204, "DELETE")
	curl(t, "-u", "u:p", "-X", "DELETE", api+"/Other").mustBe(t, 404, "DELETE of an unknown torrent")
	if len(ctl.removed) != 1 {
		t.Errorf("removed %q", ctl.removed)
	}
}

// TestRemoveAndClose: Server.Remove ends a body waiting for pieces no peer sends and makes the
// torrent's paths 404; Close ends waiting bodies at once.
func TestRemoveAndClose(t *testing.T) {
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show", showFiles[:1], 32<<10, 26)
	s := startSwarm(t, mi, src, "127.0.0.197", "127.0.0.198", httpserve.Options{})
	s.seeder.Close() // nothing will come
	waiting := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			resp, err := http.Get(s.url + "/Show/movie.mkv")
			if err == nil {
				_, err = bytes.NewBuffer(nil).ReadFrom(resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
		return done
	}
	done := waiting()
	waitFor(t, func() bool { return s.tor.Stats().WaitingReads > 0 })
	start := time.Now()
	if !s.srv.Remove("Show") {
		t.Fatal("Remove: not served")
	}
	if err := <-done; err == nil {
		t.Error("a body cut by Remove read to its end")
	}
	t.Logf("Remove ended a waiting body in %v", time.Since(start))
	if r := curl(t, s.url+"/Show/movie.mkv"); r.code != 404 {
		t.Errorf("after Remove: %d", r.code)
	}
	if _, err := s.srv.Add(s.tor, "Show"); err != nil {
		t.Fatal(err)
	}
	done = waiting()
	waitFor(t, func() bool { return s.tor.Stats().WaitingReads > 0 })
	start = time.Now()
	if err := s.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v with a waiting body", d)
	}
	if err := <-done; err == nil {
		t.Error("a body cut by Close read to its end")
	}
	if _, err := s.srv.Add(s.tor, ""); err == nil {
		t.Error("Add after Close succeeded")
	}
}

// TestStatusAPI: /api/status is status.Collect of the served torrents (what gotfs status
// --json prints for a mount), piece map included.
func TestStatusAPI(t *testing.T) {
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show", showFiles, 32<<10, 27)
	s := startSwarm(t, mi, src, "127.0.0.199", "127.0.0.200", httpserve.Options{})
	curl(t, "-r", "0-99", s.url+"/Show/movie.mkv").mustBe(t, 206, "first bytes")
	r := curl(t, s.url+"/api/status")
	r.mustBe(t, 200, "api/status")
	var got status.Mount
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("api/status: %v: %s", err, r.body)
	}
	if len(got.Torrents) != 1 {
		t.Fatalf("api/status: %s", r.body)
	}
	ts := got.Torrents[0]
	if ts.Name != "Show" || ts.InfoHash != mi.InfoHash.Hex() || ts.Size != mi.Info.Length || ts.Pieces != mi.Info.NumPieces() ||
		len(ts.PieceMap) != mi.Info.NumPieces() || ts.PiecesPerCell != 1 || ts.PieceMap[0] != status.CellVerified || ts.VerifiedPieces == 0 {
		t.Errorf("api/status: %+v", ts)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
