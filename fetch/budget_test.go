package fetch

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testswarm"
)

// TestInflightBudget: with a client-wide budget of 8 blocks in flight, a download from three
// seeders never has more outstanding, still completes, and leaves nothing counted once done.
func TestInflightBudget(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "budget", []testswarm.File{{Path: []string{"f.bin"}, Size: 3<<20 + 777}}, 64<<10, 31)
	var peers []netip.AddrPort
	for _, ip := range []string{"127.0.0.231", "127.0.0.232", "127.0.0.233"} {
		peers = append(peers, startSeeder(t, ip, mi, src).c.Addr())
	}
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: t.TempDir(), RecordPath: filepath.Join(t.TempDir(), "rec")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const budget = 8
	c, err := NewClient(Config{ListenAddr: "127.0.0.234:0", Logger: testLogger(t), MaxInflight: budget * blockSize})
	if err != nil {
		t.Fatal(err)
	}
	tor, err := c.AddTorrent(mi, TorrentOptions{Storage: st, Peers: peers, NoTrackers: true, Background: true})
	if err != nil {
		t.Fatal(err)
	}
	most := int64(0)
	deadline := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case <-tor.Complete():
			done = true
		case <-deadline:
			t.Fatalf("download stalled under the budget: %+v", tor.Stats())
		case <-time.After(time.Millisecond):
		}
		most = max(most, c.inflight.Load())
	}
	if most > budget {
		t.Errorf("%d blocks in flight at once, budget %d", most, budget)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := c.inflight.Load(); n != 0 {
		t.Errorf("%d blocks still counted in flight after the client closed", n)
	}
	t.Logf("at most %d blocks in flight", most)
}
