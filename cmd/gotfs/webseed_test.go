package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/status"
	"github.com/gotfs/gotfs/torrentfile"
)

// webSeedTorrent makes a folder "Show" with an H.264 MP4 whose index is at the end and a
// text file, serves the folder's parent with a real nginx on ip, and writes a torrent whose
// only source is that server (url-list; no tracker, no peer). It returns the torrent file and
// the source folder.
func webSeedTorrent(t *testing.T, ip string) (torrent, src string, ng *testenv.Nginx) {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	src = t.TempDir()
	dir := filepath.Join(src, "Show")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=20:size=320x240:rate=25",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", filepath.Join(dir, "episode.mp4")).CombinedOutput(); err != nil {
		t.Fatalf("make a video: %v: %s", err, b)
	}
	writeRandomFiles(t, dir, map[string]int{"notes.txt": 300_001}, 7)
	ng = testenv.StartNginx(t, ip, src)
	_, raw, err := torrentfile.Create(t.Context(), dir, torrentfile.CreateOptions{PieceLength: 64 << 10, WebSeeds: []string{ng.URL}})
	if err != nil {
		t.Fatal(err)
	}
	torrent = filepath.Join(t.TempDir(), "show.torrent")
	if err := os.WriteFile(torrent, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return torrent, src, ng
}

// TestWebSeedMount mounts a torrent whose only source is a web seed (a real nginx): the first
// byte comes, ffprobe reads the MP4's duration (its index is at the end), and cp of every
// file gives the source's bytes.
func TestWebSeedMount(t *testing.T) {
	testenv.RequireFUSE(t)
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	bin := buildBinary(t)
	torrent, src, _ := webSeedTorrent(t, "127.0.0.91")
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	p := startMount(t, bin, "--cache-dir", t.TempDir(), "--listen", "127.0.0.92:0", torrent, mp)
	video := filepath.Join(mp, "Show", "episode.mp4")
	p.ready(t, video)

	start := time.Now()
	h, err := os.Open(video)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Logf("first byte from the web seed after %v", time.Since(start))
	start = time.Now()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", video).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	if d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || d < 19.5 || d > 20.5 {
		t.Fatalf("ffprobe duration %q, want 20", out)
	}
	t.Logf("ffprobe over the web seed in %v", time.Since(start))
	for _, name := range []string{"notes.txt", "episode.mp4"} {
		dst := filepath.Join(t.TempDir(), name)
		if b, err := exec.Command("cp", filepath.Join(mp, "Show", name), dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v: %s", name, err, b)
		}
		if sha256File(t, dst) != sha256File(t, filepath.Join(src, "Show", name)) {
			t.Errorf("%s copied from the mount differs from the source", name)
		}
	}
	// gotfs status lists the web seed with what it delivered.
	out, err = exec.Command(bin, "status", "--json", mp).Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st status.Mount
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status JSON %s: %v", out, err)
	}
	if len(st.Torrents) != 1 || len(st.Torrents[0].WebSeeds) != 1 || st.Torrents[0].WebSeeds[0].Downloaded == 0 {
		t.Errorf("status shows no web seed that delivered bytes: %s", out)
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("mount exit: %v; output:\n%s", err, p.out.String())
	}
}

// TestWebSeedDownloadJSON: `download --json` from nothing but a web seed reports what the web
// seed delivered; with --no-webseeds the web seed is never asked (the download cannot start,
// so it is cut short by its own --timeout-less context: we stop it after a moment).
func TestWebSeedDownloadJSON(t *testing.T) {
	bin := buildBinary(t)
	torrent, src, ng := webSeedTorrent(t, "127.0.0.93")
	out := t.TempDir()
	cmd := exec.Command(bin, "download", torrent, "-o", out, "--cache-dir", t.TempDir(), "--listen", "127.0.0.94:0", "--no-dht", "--json")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	var sum downloadSummary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("JSON %s: %v", b, err)
	}
	if len(sum.WebSeeds) != 1 || sum.WebSeeds[0].URL != ng.URL || sum.WebSeeds[0].Downloaded < sum.Size-(64<<10) {
		t.Fatalf("web seeds in the summary: %+v (size %d)", sum.WebSeeds, sum.Size)
	}
	for _, name := range []string{"notes.txt", "episode.mp4"} {
		if sha256File(t, filepath.Join(out, "Show", name)) != sha256File(t, filepath.Join(src, "Show", name)) {
			t.Errorf("%s differs from the source", name)
		}
	}
	before := ng.AccessLog()
	cmd = exec.Command(bin, "download", torrent, "-o", t.TempDir(), "--cache-dir", t.TempDir(), "--listen", "127.0.0.94:0", "--no-dht", "--no-webseeds")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(unix.SIGINT)
	cmd.Wait()
	if after := ng.AccessLog(); after != before {
		t.Errorf("--no-webseeds still asked the web seed:\n%s", strings.TrimPrefix(after, before))
	}
}
