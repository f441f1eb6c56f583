package httpserve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/httpserve"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/status"
)

// TestMediaOverHTTP: ffprobe reads the duration of an MP4 whose index is at its end, and
// ffmpeg decodes a frame after seeking to its middle, both over the URL of a cold torrent.
func TestMediaOverHTTP(t *testing.T) {
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	src := t.TempDir()
	mi := testswarm.MakeVideoTorrent(t, ffmpeg, src)
	s := startSwarm(t, mi, src, "127.0.0.201", "127.0.0.202", httpserve.Options{MaxReadahead: 1 << 20})
	url := s.url + "/Movie/movie.mp4"
	start := time.Now()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	if d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || d < 19.5 || d > 20.5 {
		t.Fatalf("ffprobe duration %q, want 20", out)
	}
	t.Logf("ffprobe read the duration in %v (%d of %d bytes verified)", time.Since(start), s.st.VerifiedBytes(), mi.Info.Length)
	start = time.Now()
	if out, err := exec.Command(ffmpeg, "-v", "error", "-ss", "10", "-i", url, "-frames:v", "1", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -ss 10: %v: %s", err, out)
	}
	t.Logf("ffmpeg decoded a frame at 10s in %v (%d of %d bytes verified)", time.Since(start), s.st.VerifiedBytes(), mi.Info.Length)
}

// TestStatusPageInBrowser: headless Chromium loads the status page, whose script fetches
// /api/status and renders it; the rendered DOM names the torrent and shows its verified
// percentage as /api/status reports it. The seeder stops after one read so the figure holds.
func TestStatusPageInBrowser(t *testing.T) {
	chromium := testenv.RequireBinary(t, "chromium")
	src := t.TempDir()
	mi := testswarm.MakeTorrent(t, src, "Show <b>&", showFiles, 32<<10, 28)
	s := startSwarm(t, mi, src, "127.0.0.203", "127.0.0.204", httpserve.Options{MaxReadahead: -1})
	curl(t, "-r", "0-99999", s.url+"/Show%20%3Cb%3E&/movie.mkv").mustBe(t, 206, "first bytes")
	s.seeder.Close()
	var st status.Mount
	if err := json.Unmarshal(curl(t, s.url+"/api/status").body, &st); err != nil || len(st.Torrents) != 1 {
		t.Fatalf("api/status: %v %+v", err, st)
	}
	ts := st.Torrents[0]
	pct := fmt.Sprintf("%.1f%%", 100*float64(ts.VerifiedBytes)/float64(ts.Size))
	if ts.VerifiedBytes == 0 || ts.VerifiedBytes == ts.Size {
		t.Fatalf("verified %d of %d: want a part", ts.VerifiedBytes, ts.Size)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=3000", "--dump-dom", s.url+"/")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v: %s", err, stderr.String())
	}
	page := string(dom)
	name := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(ts.Name)
	for _, want := range []string{
		`class="name" href="/Show%20%3Cb%3E%26">` + name + `</a>`, // the name, escaped, as a link
		`<div class="pct">` + pct + `</div>`,                      // the bar's label
		`style="width: ` + pct + `;"`,                             // the bar itself
		"pieces: <b>" + strconv.Itoa(ts.VerifiedPieces) + " / " + strconv.Itoa(ts.Pieces) + "</b>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the rendered page lacks %s; DOM:\n%s", want, page[strings.Index(page, "<body"):])
		}
	}
	if strings.Contains(page, "<b>&") {
		t.Error("the torrent's name went into the page unescaped")
	}
}
