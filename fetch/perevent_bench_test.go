package fetch

import (
	"crypto/sha1"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

// benchTorrent adds a torrent of n 16 KiB pieces (nothing on disk: the files stay sparse and
// unwritten) to a client and returns it with a peer that has every piece and unchokes us.
func benchTorrent(b testing.TB, n int, background bool) (*Torrent, *peer) {
	b.Helper()
	return benchTorrentPieces(b, n, 16<<10, background)
}

// benchTorrentPieces is benchTorrent with pieces of pl bytes.
func benchTorrentPieces(b testing.TB, n, pl int, background bool) (*Torrent, *peer) {
	b.Helper()
	info := torrentfile.Info{Name: "big", PieceLength: int64(pl), Length: int64(n) * int64(pl), Pieces: make([]torrentfile.Hash, n),
		Files: []torrentfile.File{{Path: []string{"big"}, Length: int64(n) * int64(pl)}}}
	for i := range info.Pieces {
		info.Pieces[i] = sha1.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	mi := &torrentfile.Metainfo{Info: info, InfoHash: sha1.Sum([]byte(fmt.Sprint("bench", n, pl)))}
	dir := b.TempDir()
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: filepath.Join(dir, "data"), RecordPath: filepath.Join(dir, "rec"), InfoHash: mi.InfoHash})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c, err := NewClient(Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	tor, err := c.AddTorrent(mi, TorrentOptions{Storage: st, NoTrackers: true, Background: background})
	if err != nil {
		b.Fatal(err)
	}
	has := p2p.NewBitfield(n)
	for i := range n {
		has.Set(i)
	}
	return tor, testPeer(tor, has)
}

// testPeer returns a socket-free peer of tor that has the pieces in has, unchokes us and takes
// 4 requests at once.
func testPeer(tor *Torrent, has p2p.Bitfield) *peer {
	return &peer{t: tor, has: has, hasCount: has.Count(), amInterested: true, depth: 4, maxDepth: 4, wakeCh: make(chan struct{}, 1)}
}

// benchReader opens a reader with a 2 MiB window on the torrent's file and holds the torrent's
// lock until the benchmark ends (which closes the reader).
func benchReader(b *testing.B, tor *Torrent) *Reader {
	b.Helper()
	r, err := tor.NewReader(0, ReaderOptions{MaxReadahead: 2 << 20})
	if err != nil {
		b.Fatal(err)
	}
	tor.mu.Lock()
	b.Cleanup(func() {
		tor.mu.Unlock()
		r.Close()
	})
	return r
}

// BenchmarkPerEvent measures the engine's per-event costs on torrents of 4 k and 400 k pieces:
// they must not grow with the torrent (O(window) or O(log pieces), not O(pieces)).
//   - pick: a peer looks for a new piece on a mount without --prefetch whose reader's window
//     is all in progress already (nothing to start: the worst case of a full scan);
//   - window: a sequential read moves a reader's 2 MiB readahead window by one piece and the
//     priorities follow.
func BenchmarkPerEvent(b *testing.B) {
	for _, n := range []int{4_000, 400_000} {
		b.Run(fmt.Sprintf("pick/pieces=%d", n), func(b *testing.B) {
			tor, p := benchTorrent(b, n, false)
			r := benchReader(b, tor)
			r.ra.advance(0, 16<<10)
			tor.recomputePriorityLocked()
			for _, i := range tor.pt.urgent {
				tor.pt.startFetch(i) // every piece the reader wants is in progress
			}
			b.ResetTimer()
			for range b.N {
				if i := tor.picker.pick(tor.pt, p, false, &p.noPickGen); i >= 0 {
					b.Fatalf("picked piece %d", i)
				}
			}
		})
		b.Run(fmt.Sprintf("window/pieces=%d", n), func(b *testing.B) {
			tor, _ := benchTorrent(b, n, false)
			r := benchReader(b, tor)
			size := tor.info.Length
			off := int64(0)
			b.ResetTimer()
			for range b.N {
				if r.ra.advance(off, 16<<10) {
					tor.recomputePriorityLocked()
				}
				off += 16 << 10
				if off+16<<10 >= size/2 {
					off = 0
				}
			}
		})
	}
}

// BenchmarkEndgamePick: a download whose every remaining piece is in progress (the endgame)
// looks for a new piece after each received block; it must not scan every piece each time.
func BenchmarkEndgamePick(b *testing.B) {
	for _, n := range []int{4_000, 400_000} {
		b.Run(fmt.Sprintf("pieces=%d", n), func(b *testing.B) {
			tor, p := benchTorrent(b, n, true)
			tor.mu.Lock()
			defer tor.mu.Unlock()
			for i := range tor.pt.len() {
				tor.pt.startFetch(i) // every wanted piece is being downloaded
			}
			b.ResetTimer()
			for range b.N {
				if i := tor.picker.pick(tor.pt, p, false, &p.noPickGen); i >= 0 {
					b.Fatalf("picked busy piece %d", i)
				}
			}
		})
	}
}

// BenchmarkInterest: a peer's writer asks whether we are interested each time it wakes; on an
// idle mount (no reader, nothing in the background) the answer must not cost a scan of every
// piece.
func BenchmarkInterest(b *testing.B) {
	for _, n := range []int{4_000, 400_000} {
		b.Run(fmt.Sprintf("pieces=%d", n), func(b *testing.B) {
			tor, p := benchTorrent(b, n, false)
			tor.mu.Lock()
			defer tor.mu.Unlock()
			b.ResetTimer()
			for range b.N {
				if tor.interestedInLocked(p) {
					b.Fatal("interested with nothing wanted")
				}
			}
		})
	}
}
