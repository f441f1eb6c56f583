package fetch

import (
	"math"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
)

// measureRate samples a byte counter over d, after a warm-up, and returns bytes per second.
func measureRate(warmup, d time.Duration, counter func() int64) float64 {
	time.Sleep(warmup)
	b0, t0 := counter(), time.Now()
	time.Sleep(d)
	return float64(counter()-b0) / time.Since(t0).Seconds()
}

// checkRate fails the test when got is more than tol (a fraction) away from want.
func checkRate(t *testing.T, what string, got float64, want int64, tol float64) {
	t.Helper()
	t.Logf("%s: %.0f B/s, cap %d B/s", what, got, want)
	if math.Abs(got-float64(want)) > tol*float64(want) {
		t.Errorf("%s: %.0f B/s, want %d B/s ± %.0f%%", what, got, want, tol*100)
	}
}

// TestRateLimits: a client capped at 2 MiB/s downloads at 2 MiB/s, counted as the bytes its
// peers delivered; raised at run time to 4 MiB/s it follows; and a seeder capped at 2 MiB/s
// uploads at 2 MiB/s to a leecher without a cap. Without the caps the loopback swarm moves
// hundreds of MiB/s.
func TestRateLimits(t *testing.T) {
	const capRate = 2 << 20
	src := t.TempDir()
	mi := makeTorrent(t, src, "capped", []testswarm.File{{Size: 48 << 20}}, 256<<10, 14)

	seed := startSeeder(t, "127.0.0.181", mi, src)
	leech := startLeecher(t, "127.0.0.182", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{seed.c.Addr()}, TorrentOptions{Background: true})
	leech.c.SetRateLimits(RateLimits{Download: capRate})
	if got := leech.c.RateLimits(); got.Download != capRate || got.Upload != 0 {
		t.Fatalf("RateLimits() = %+v", got)
	}
	downloaded := func() int64 { return leech.t.Stats().Downloaded }
	checkRate(t, "download capped at 2 MiB/s", measureRate(500*time.Millisecond, 2*time.Second, downloaded), capRate, 0.10)
	leech.c.SetRateLimits(RateLimits{Download: 2 * capRate})
	checkRate(t, "download raised to 4 MiB/s at run time", measureRate(300*time.Millisecond, 2*time.Second, downloaded), 2*capRate, 0.10)
	leech.close()
	seed.close()

	// The upload cap, on a fresh pair: the seeder's client is capped.
	seed = startSeeder(t, "127.0.0.181", mi, src)
	seed.c.SetRateLimits(RateLimits{Upload: capRate})
	leech = startLeecher(t, "127.0.0.182", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{seed.c.Addr()}, TorrentOptions{Background: true})
	uploaded := func() int64 { return seed.t.Stats().Uploaded }
	checkRate(t, "upload capped at 2 MiB/s", measureRate(500*time.Millisecond, 2*time.Second, uploaded), capRate, 0.10)
}
