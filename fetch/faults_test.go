package fetch

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
)

// TestSeederKilledMidPiece: a seeder that vanishes in the middle of pieces leaves its requests to
// the other seeder, and the download completes correct.
func TestSeederKilledMidPiece(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "vanish", []testswarm.File{{Path: []string{"big"}, Size: 24 << 20}}, 1<<20, 61)
	s1 := startSeeder(t, "127.0.0.211", mi, src)
	s2 := startSeeder(t, "127.0.0.212", mi, src)
	dst := t.TempDir()
	l := startLeecher(t, "127.0.0.213", mi, dst, filepath.Join(t.TempDir(), "rec"),
		[]netip.AddrPort{s1.c.Addr(), s2.c.Addr()}, TorrentOptions{Background: true})
	// Kill the first seeder once some blocks have come, while pieces are half received.
	deadline := time.Now().Add(20 * time.Second)
	for {
		l.t.mu.Lock()
		partial := 0
		for _, d := range l.t.downloads {
			if d.nGot > 0 && d.nGot < d.nBlocks {
				partial++
			}
		}
		l.t.mu.Unlock()
		if partial > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never saw a half-received piece")
		}
		time.Sleep(time.Millisecond)
	}
	s1.c.Close()
	waitComplete(t, l, 60*time.Second)
	sameFiles(t, mi, src, dst, nil)
	if s := l.t.Stats(); s.HashFailures != 0 {
		t.Errorf("%d hash failures after a seeder vanished", s.HashFailures)
	}
}
