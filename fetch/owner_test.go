package fetch

import (
	"testing"
	"time"

	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/webseed"
)

// requestedPieces lists the pieces p holds requests for, in order of first request.
func requestedPieces(p *peer) []int {
	var out []int
	seen := map[uint32]bool{}
	for _, r := range p.requests {
		if !seen[r.piece] {
			seen[r.piece] = true
			out = append(out, int(r.piece))
		}
	}
	return out
}

// TestBackgroundPieceOwnership: in a background download each peer fetches the pieces it
// started, so that a piece's blocks come in order over one connection and are hashed in
// memory as they arrive (before, every peer took the next unrequested blocks of every piece in
// progress, and most of each piece was read back from the cache file to be hashed). A peer
// takes over a piece whose owner cannot fetch it (gone, choking us), and when nothing new is
// left to start it takes the others' unrequested blocks, still before any duplicate.
func TestBackgroundPieceOwnership(t *testing.T) {
	const blocks = 16 // per piece
	tor, a := benchTorrentPieces(t, 4, blocks*p2p.BlockSize, true)
	tor.mu.Lock()
	defer tor.mu.Unlock()
	b := testPeer(tor, a.has)
	a.depth, b.depth = blocks/2, blocks/2

	tor.fillRequestsLocked(a)
	pa := requestedPieces(a)
	if len(pa) != 1 {
		t.Fatalf("peer a asked for pieces %v, want one", pa)
	}
	tor.fillRequestsLocked(b)
	pb := requestedPieces(b)
	if len(pb) != 1 || pb[0] == pa[0] {
		t.Fatalf("peer b asked for pieces %v while a fetches piece %d: want a piece of its own", pb, pa[0])
	}
	// a's pipeline grows: it goes on with its own piece, not with b's.
	a.depth = blocks
	tor.fillRequestsLocked(a)
	if got := requestedPieces(a); len(got) != 1 || got[0] != pa[0] || len(a.requests) != blocks {
		t.Fatalf("peer a asked for pieces %v (%d requests), want all %d blocks of piece %d", got, len(a.requests), blocks, pa[0])
	}

	// a sends a block, then chokes us: the rest of its piece passes to b.
	sendFirstBlock(t, tor, a)
	a.peerChoking = true
	tor.releaseChokedRequestsLocked(a)
	b.depth = blocks + blocks/2
	tor.fillRequestsLocked(b)
	if got := requestedPieces(b); len(got) != 2 || got[1] != pa[0] {
		t.Fatalf("after a choked us, b asked for pieces %v, want %d then %d", got, pb[0], pa[0])
	}
	if o := tor.downloads[pa[0]].owner; o != b {
		t.Fatalf("piece %d is held by %p after b took it over, want b (%p)", pa[0], o, b)
	}

	// c starts the last two pieces, and with nothing new left takes the unrequested blocks
	// of b's pieces, in this fill and in the next, before it asks for any block twice.
	unrequested := func() int {
		n := 0
		for _, d := range tor.downloads {
			for k := range d.nBlocks {
				if !d.got[k] && d.reqs[k] == 0 {
					n++
				}
			}
		}
		return n
	}
	c := testPeer(tor, b.has)
	c.depth = 2*blocks + 2
	left := unrequested() - 2
	tor.fillRequestsLocked(c)
	c.depth += left
	tor.fillRequestsLocked(c)
	if got := requestedPieces(c); len(got) < 3 || len(c.requests) != c.depth || unrequested() != 0 {
		t.Fatalf("c asked for pieces %v (%d requests, depth %d); %d blocks left unrequested", got, len(c.requests), c.depth, unrequested())
	}
	for _, r := range c.requests {
		if n := tor.downloads[int(r.piece)].reqs[int(r.begin)/p2p.BlockSize]; n != 1 {
			t.Fatalf("c asked for block %d+%d, which %d peers were asked for, while others were unrequested", r.piece, r.begin, n)
		}
	}
}

// TestExclusivePieceOutlivesItsPeer: a piece retried after a hash failure with several
// senders is fetched by one peer alone; when that peer leaves in the middle, another takes
// the reservation over. Before, the rest of the piece was never asked of anyone again and
// the download waited forever.
func TestExclusivePieceOutlivesItsPeer(t *testing.T) {
	const blocks = 16
	tor, a := benchTorrentPieces(t, 1, blocks*p2p.BlockSize, true)
	tor.mu.Lock()
	defer tor.mu.Unlock()
	d := reserveAfterFailure(t, tor, a, blocks/2)
	// a sends one block, then leaves.
	sendFirstBlock(t, tor, a)
	leave(tor, a)

	b := testPeer(tor, a.has)
	b.depth = blocks
	tor.fillRequestsLocked(b)
	if len(b.requests) != blocks-1 {
		t.Fatalf("b asked for %d blocks of piece 0 after its reserved peer left, want %d", len(b.requests), blocks-1)
	}
	if d.exclusive != b {
		t.Fatalf("piece 0 is reserved for %p, want b (%p)", d.exclusive, b)
	}
}

// TestReservedPiecePassesToWebSeed: a piece retried from one peer alone after a hash failure
// is left to that peer while it is connected, and passes to a web seed, alone, once it leaves.
func TestReservedPiecePassesToWebSeed(t *testing.T) {
	const blocks = 16
	tor, a := benchTorrentPieces(t, 1, blocks*p2p.BlockSize, true)
	// The source is never asked: takeWebJobLocked only assigns blocks to it.
	src, err := webseed.NewClient(webseed.Config{}).NewSource(webseed.NewLayout(tor.info, tor.hash), webseed.URLList, "http://127.0.0.1:9/")
	if err != nil {
		t.Fatal(err)
	}
	tor.mu.Lock()
	defer tor.mu.Unlock()
	tor.webSeeds = []*webseed.Source{src}
	d := reserveAfterFailure(t, tor, a, blocks/2)
	if job, ok := tor.takeWebJobLocked(time.Now()); ok {
		t.Fatalf("the web seed was given blocks %d+%d of piece %d, reserved for a connected peer", job.first, job.n, job.d.index)
	}
	// a sends its first block, then leaves.
	sendFirstBlock(t, tor, a)
	leave(tor, a)

	job, ok := tor.takeWebJobLocked(time.Now())
	if !ok || job.d != d || job.src != src {
		t.Fatalf("after its reserved peer left, the web seed got job %+v (ok %v), want the rest of piece 0", job, ok)
	}
	if job.first != 1 || job.n != blocks-1 {
		t.Fatalf("the web seed was given blocks [%d, %d), want [1, %d)", job.first, job.first+job.n, blocks)
	}
	if d.exclusive != nil || d.exclusiveWeb != src {
		t.Fatalf("piece 0 reserved for peer %p and web seed %p, want the web seed alone", d.exclusive, d.exclusiveWeb)
	}
	// A peer that comes now leaves the piece to the web seed.
	b := testPeer(tor, a.has)
	b.depth = blocks
	tor.fillRequestsLocked(b)
	if len(b.requests) != 0 {
		t.Fatalf("b asked for %d blocks of a piece reserved for the web seed", len(b.requests))
	}
}

// sendFirstBlock delivers the block of p's first outstanding request. Called under tor.mu.
func sendFirstBlock(t *testing.T, tor *Torrent, p *peer) {
	t.Helper()
	r := p.requests[0]
	if _, err := tor.handleBlockLocked(p, p2p.Message{ID: p2p.MsgPiece, Index: r.piece, Begin: r.begin, Payload: make([]byte, r.length)}); err != nil {
		t.Fatal(err)
	}
}

// reserveAfterFailure marks piece 0 as failed once with several senders, lets p ask for depth
// of its blocks, and returns its download, which must be reserved for p alone. Called under
// tor.mu.
func reserveAfterFailure(t *testing.T, tor *Torrent, p *peer, depth int) *pieceDownload {
	t.Helper()
	tor.failed = map[int]bool{0: true}
	p.depth = depth
	tor.fillRequestsLocked(p)
	d := tor.downloads[0]
	if d == nil || d.exclusive != p {
		t.Fatalf("piece 0 after a hash failure: download %v, want it reserved for the peer", d)
	}
	return d
}

// leave marks p gone as removePeer does (closed, its requests given back), with no
// connection to close. Called under tor.mu.
func leave(tor *Torrent, p *peer) {
	p.closed = true
	tor.releaseRequestsLocked(p)
}
