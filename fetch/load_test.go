package fetch

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
)

// TestSeederHolds200Peers: 200 peers connect at once to a seeding client; it keeps at most
// MaxPeers of them, refuses the rest cleanly, and still serves an honest leecher.
func TestSeederHolds200Peers(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "crowd", []testswarm.File{{Path: []string{"f"}, Size: 1 << 20}}, 64<<10, 31)
	seed := startSeeder(t, "127.0.0.151", mi, src)
	limit := seed.c.cfg.MaxPeers
	var kept atomic.Int32
	var conns sync.Map
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var id [20]byte
			copy(id[:], "-XX0001-crowd")
			id[19], id[18] = byte(i), byte(i>>8)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, _, err := p2p.Dial(ctx, seed.c.Addr(), mi.InfoHash, id, p2p.Options{NumPieces: mi.Info.NumPieces(), ReadTimeout: 2 * time.Second})
			if err != nil {
				return
			}
			// A connection the seeder keeps sends its bitfield; a refused one is closed.
			if m, err := conn.ReadMessage(); err == nil && m.ID == p2p.MsgBitfield {
				kept.Add(1)
				conns.Store(i, conn)
				return
			}
			conn.Close()
		}()
	}
	wg.Wait()
	defer conns.Range(func(_, c any) bool { c.(*p2p.Conn).Close(); return true })
	if n := int(kept.Load()); n > limit || n == 0 {
		t.Errorf("seeder kept %d of 200 connections, limit %d", n, limit)
	}
	if s := seed.t.Stats(); s.Peers > limit {
		t.Errorf("seeder has %d peers, limit %d", s.Peers, limit)
	}
	// Free the slots and check that it still serves.
	conns.Range(func(k, c any) bool { c.(*p2p.Conn).Close(); conns.Delete(k); return true })
	deadline := time.Now().Add(10 * time.Second)
	for seed.t.Stats().Peers > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	dst := t.TempDir()
	l := startLeecher(t, "127.0.0.152", mi, dst, filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{seed.c.Addr()}, TorrentOptions{Background: true})
	waitComplete(t, l, 30*time.Second)
	sameFiles(t, mi, src, dst, nil)
	t.Logf("kept %d of 200 simultaneous connections (limit %d)", kept.Load(), limit)
}
