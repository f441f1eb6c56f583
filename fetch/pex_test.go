package fetch

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
)

// TestPexIntroducesPeers: C knows only B; B knows A; B's peer exchange (BEP 11) introduces A to
// C, which connects to it.
func TestPexIntroducesPeers(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "pex", []testswarm.File{{Path: []string{"f"}, Size: 512 << 10}}, 32<<10, 51)
	a := startSeeder(t, "127.0.0.201", mi, src)
	b := startLeecher(t, "127.0.0.202", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{a.c.Addr()}, TorrentOptions{})
	c := startLeecher(t, "127.0.0.203", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{b.c.Addr()}, TorrentOptions{})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.t.mu.Lock()
		_, known := c.t.candidates[a.c.Addr()]
		connected := false // either way: C dialled A, or A (told about C by B) dialled C
		for p := range c.t.peers {
			connected = connected || p.addr.Addr() == a.c.Addr().Addr()
		}
		c.t.mu.Unlock()
		if known && connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("C never learned A through PEX (known %v, connected %v)\n%s", known, connected, c.t.debugString())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPexNotOnPrivateTorrents: a private torrent (BEP 27) neither sends nor accepts PEX.
func TestPexNotOnPrivateTorrents(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "pexpriv", []testswarm.File{{Path: []string{"f"}, Size: 512 << 10}}, 32<<10, 52)
	mi.Info.Private = true
	a := startSeeder(t, "127.0.0.204", mi, src)
	b := startLeecher(t, "127.0.0.205", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{a.c.Addr()}, TorrentOptions{})
	c := startLeecher(t, "127.0.0.206", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{b.c.Addr()}, TorrentOptions{})
	time.Sleep(3 * time.Second) // several ticks: PEX would have gone out by now
	c.t.mu.Lock()
	_, known := c.t.candidates[a.c.Addr()]
	c.t.mu.Unlock()
	if known {
		t.Fatal("a private torrent learned a peer through PEX")
	}
}
