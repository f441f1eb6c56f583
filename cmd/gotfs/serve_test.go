package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/status"
	"github.com/gotfs/gotfs/torrentfile"
)

var servingURL = regexp.MustCompile(`gotfs: serving .* at (http://\S+/)`)

// serveURL waits for a gotfs process to say where it serves HTTP.
func serveURL(t *testing.T, p *gotfsProc) string {
	t.Helper()
	var url string
	if !waitUntil(20*time.Second, func() bool {
		m := servingURL.FindStringSubmatch(p.out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("no HTTP address announced; output:\n%s", p.out.String())
	}
	return url
}

// curlGet fetches url with the real curl (extra arguments first) and returns the body.
func curlGet(t *testing.T, url string, args ...string) (int, []byte) {
	t.Helper()
	bin := testenv.RequireBinary(t, "curl")
	body := filepath.Join(t.TempDir(), "body")
	out, err := exec.Command(bin, append(args, "-sS", "-g", "--max-time", "60", "-o", body, "-w", "%{http_code}", url)...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	var code int
	fmt.Sscan(string(out), &code)
	b, _ := os.ReadFile(body)
	return code, b
}

// TestServeBinary runs `gotfs serve` (no FUSE): curl's ranges at random offsets of a cold
// torrent are the source's bytes, a bad range is 416, the password is required, and SIGTERM
// stops it cleanly.
func TestServeBinary(t *testing.T) {
	bin := buildBinary(t)
	src := t.TempDir()
	mi, tf := writeTorrent(t, src, "Movie", map[string]int{"movie.mkv": 6_000_000, "extras/notes.txt": 12_345}, 41)
	sd := startTestSeeder(t, mi, src, "127.0.0.205:0")
	p := &gotfsProc{cmd: exec.Command(bin, "serve", "--no-dht", "--cache-dir", t.TempDir(), "--listen", "127.0.0.206:0",
		"--peer", sd.Addr().String(), "--http", "127.0.0.206:0", "--http-auth", "me:pw", tf), out: &testenv.LockedBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	url := serveURL(t, p) + "Movie/movie.mkv"

	want, err := os.ReadFile(filepath.Join(src, "Movie", "movie.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := curlGet(t, url); code != 401 {
		t.Errorf("without credentials: %d, want 401", code)
	}
	rng := rand.New(rand.NewPCG(41, 1))
	for range 10 {
		off := rng.IntN(len(want))
		end := min(len(want)-1, off+rng.IntN(200_000))
		code, got := curlGet(t, url, "-u", "me:pw", "-r", fmt.Sprintf("%d-%d", off, end))
		if code != 206 || !bytes.Equal(got, want[off:end+1]) {
			t.Fatalf("range %d-%d: status %d, %d bytes, equal %v", off, end, code, len(got), bytes.Equal(got, want[off:end+1]))
		}
	}
	if code, _ := curlGet(t, url, "-u", "me:pw", "-r", fmt.Sprintf("%d-", len(want))); code != 416 {
		t.Errorf("range past the end: %d, want 416", code)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM; output:\n%s", err, p.out.String())
	}
}

// TestMountHTTPStatus mounts with --http: a file read over HTTP equals the one read from the
// mount, and /api/status is what `gotfs status --json` prints (rates aside, which move).
func TestMountHTTPStatus(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := buildBinary(t)
	src := t.TempDir()
	mi, tf := writeTorrent(t, src, "Movie", map[string]int{"movie.mkv": 2_000_000, "extras/notes.txt": 999}, 42)
	sd := startTestSeeder(t, mi, src, "127.0.0.207:0")
	cacheDir, mp := t.TempDir(), t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	p := startMount(t, bin, "--cache-dir", cacheDir, "--listen", "127.0.0.208:0", "--peer", sd.Addr().String(),
		"--http", "127.0.0.208:0", tf, mp)
	movie := filepath.Join(mp, "Movie", "movie.mkv")
	p.ready(t, movie)
	base := serveURL(t, p)
	code, overHTTP := curlGet(t, base+"Movie/movie.mkv")
	if code != 200 || sha256File(t, movie) != sha256File(t, filepath.Join(src, "Movie", "movie.mkv")) ||
		!bytes.Equal(overHTTP, mustRead(t, filepath.Join(src, "Movie", "movie.mkv"))) {
		t.Fatalf("over HTTP (%d) or from the mount, movie.mkv differs from the source", code)
	}

	out, err := exec.Command(bin, "status", "--cache-dir", cacheDir, "--json", mp).Output()
	if err != nil {
		t.Fatalf("status: %v: %s", err, out)
	}
	resp, err := http.Get(base + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	api, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var fromCLI, fromHTTP status.Mount
	if err := json.Unmarshal(out, &fromCLI); err != nil {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	if err := json.Unmarshal(api, &fromHTTP); err != nil {
		t.Fatalf("api/status: %v: %s", err, api)
	}
	for _, m := range []*status.Mount{&fromCLI, &fromHTTP} {
		m.Reads = 0 // the status command's own stat of the mount may count
		for i := range m.Torrents {
			ts := &m.Torrents[i]
			ts.DownloadRate, ts.UploadRate = 0, 0
			for j := range ts.PeerList {
				ts.PeerList[j].DownloadRate, ts.PeerList[j].UploadRate = 0, 0
			}
		}
	}
	a, _ := json.Marshal(fromCLI)
	b, _ := json.Marshal(fromHTTP)
	if !bytes.Equal(a, b) {
		t.Errorf("gotfs status --json:\n%s\n/api/status:\n%s", a, b)
	}
	if len(fromHTTP.Torrents) != 1 || fromHTTP.Torrents[0].VerifiedBytes < 2_000_000 || fromHTTP.Mountpoint != mp ||
		!strings.Contains(fromHTTP.Torrents[0].PieceMap, "v") {
		t.Errorf("api/status: %s", api)
	}
	if out, err := exec.Command(bin, "unmount", mp).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v: %s", err, out)
	}
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("mount exited with %v; output:\n%s", err, p.out.String())
	}
	if _, err := http.Get(base + "api/status"); err == nil {
		t.Error("HTTP still answers after the mount stopped")
	}
}

// writeTorrent writes random files under src/name and a .torrent of them (32 KiB pieces), and
// returns its metainfo and path.
func writeTorrent(t *testing.T, src, name string, files map[string]int, seed byte) (*torrentfile.Metainfo, string) {
	t.Helper()
	writeRandomFiles(t, filepath.Join(src, name), files, seed)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, name), torrentfile.CreateOptions{PieceLength: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), name+".torrent")
	if err := os.WriteFile(tf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return mi, tf
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
