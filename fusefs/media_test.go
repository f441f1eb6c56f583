package fusefs_test

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/internal/testswarm"
)

// TestMediaSeek mounts an H.264 MP4 whose index (moov) is at the end, as ffmpeg writes it by
// default: ffprobe reads its duration and ffmpeg decodes a frame after seeking to the middle.
func TestMediaSeek(t *testing.T) {
	testenv.RequireFUSE(t)
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	src := t.TempDir()
	mi := testswarm.MakeVideoTorrent(t, ffmpeg, src)
	sd := startSeeder(t, "127.0.0.31", mi, src)
	m := mountTorrents(t, t.TempDir(), fusefs.Options{HeadTail: fetch.HeadTailHint, MaxReadahead: 1 << 20}, []netip.AddrPort{sd.Addr()}, mi)
	path := filepath.Join(m.dir, "Movie", "movie.mp4")

	start := time.Now()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || d < 19.5 || d > 20.5 {
		t.Fatalf("ffprobe duration %q, want 20", out)
	}
	t.Logf("ffprobe read the duration in %v (%d of %d bytes verified)", time.Since(start), m.sts[0].VerifiedBytes(), mi.Info.Length)
	start = time.Now()
	if out, err := exec.Command(ffmpeg, "-v", "error", "-ss", "10", "-i", path, "-frames:v", "1", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -ss 10: %v: %s", err, out)
	}
	t.Logf("ffmpeg decoded a frame at 10s in %v", time.Since(start))
}
