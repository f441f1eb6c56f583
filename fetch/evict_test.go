package fetch

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testswarm"
)

func TestCacheLimitEvictsWhileStreaming(t *testing.T) {
	src := t.TempDir()
	const size = 6 << 20
	const pieceLen = 64 << 10
	mi := makeTorrent(t, src, "evict", []testswarm.File{{Path: []string{"big.bin"}, Size: size}}, pieceLen, 9)
	seed := startSeeder(t, "127.0.0.81", mi, src)
	want, err := os.ReadFile(filepath.Join(src, "evict", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: t.TempDir(), RecordPath: filepath.Join(t.TempDir(), "rec")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := NewClient(Config{ListenAddr: "127.0.0.82:0", CacheLimit: limit, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tor, err := c.AddTorrent(mi, TorrentOptions{Storage: st, NoTrackers: true, Peers: []netip.AddrPort{seed.c.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	const readahead = 256 << 10
	r, err := tor.NewReader(0, ReaderOptions{MaxReadahead: readahead, HeadTail: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Allowed overshoot: the readahead window, the head and tail, and pieces in flight.
	bound := int64(limit + readahead + 2*pieceLen + 8*pieceLen)
	var peak int64
	buf := make([]byte, 128<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := r.ReadAt(ctx, buf, off)
		if err != nil && n != len(buf) {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
		du, err := st.DiskUsage()
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, du)
	}
	if peak > bound {
		t.Errorf("cache disk usage peaked at %d bytes, bound %d + in flight = %d", peak, limit, bound)
	}
	if s := tor.Stats(); s.Evicted == 0 {
		t.Errorf("nothing was evicted streaming %d bytes through a %d byte cache", size, limit)
	}
	// The head piece stays (an open file's head is kept); read it again to be sure it is right.
	n, err := r.ReadAt(ctx, buf[:1000], 0)
	if err != nil || !bytes.Equal(buf[:n], want[:1000]) {
		t.Fatalf("re-read of the head: %v", err)
	}
	// Every piece was verified once, but most were evicted: the seeder must never have been
	// told all of them (it would drop us as a fellow seeder, and the next read of an evicted
	// piece would wait for a new connection), and it must still serve one read again.
	seedIP := netip.MustParseAddr("127.0.0.81")
	time.Sleep(200 * time.Millisecond) // a HAVE sent last is handled by now
	if peersFrom(tor, seedIP) != 1 {
		t.Fatal("the seeder dropped the connection after the stream")
	}
	seed.t.mu.Lock()
	for p := range seed.t.peers {
		if p.hasCount == mi.Info.NumPieces() {
			t.Errorf("the seeder counts all %d pieces at a leecher whose cache holds %d", p.hasCount, st.VerifiedCount())
		}
	}
	seed.t.mu.Unlock()
	mid := int64(size / 2)
	if n, err := r.ReadAt(ctx, buf, mid); err != nil || !bytes.Equal(buf[:n], want[mid:mid+int64(n)]) {
		t.Fatalf("read again in the middle: %v", err)
	}
	t.Logf("peak disk usage %d KiB with a %d KiB limit", peak>>10, limit>>10)
}

// TestChooseEvictions: the policy alone, without a torrent or a socket: least recently used
// first across torrents, ties in the order given, and no more than needed to free over bytes.
func TestChooseEvictions(t *testing.T) {
	a, b := &Torrent{}, &Torrent{}
	cands := func() []evictCandidate {
		return []evictCandidate{
			{a, 0, 50, 10}, {b, 7, 10, 10}, {a, 3, 30, 10}, {b, 2, 30, 10}, {a, 9, 90, 10},
		}
	}
	for _, tt := range []struct {
		over  int64
		wantA []int
		wantB []int
	}{
		{0, nil, nil},
		{1, nil, []int{7}},
		{10, nil, []int{7}},
		{11, []int{3}, []int{7}},
		{30, []int{3}, []int{7, 2}},
		{35, []int{3, 0}, []int{7, 2}},
		{1000, []int{3, 0, 9}, []int{7, 2}},
	} {
		got := chooseEvictions(cands(), tt.over)
		if !slices.Equal(got[a], tt.wantA) || !slices.Equal(got[b], tt.wantB) {
			t.Errorf("over %d: a %v b %v, want a %v b %v", tt.over, got[a], got[b], tt.wantA, tt.wantB)
		}
	}
	if got := chooseEvictions(nil, 100); len(got) != 0 {
		t.Errorf("no candidates: %v", got)
	}
}
