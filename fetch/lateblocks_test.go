package fetch

import (
	"errors"
	"testing"

	"github.com/gotfs/gotfs/p2p"
)

// TestLateBlocksOfCancelledRequests: a peer may still send every block we cancelled (a
// preempt for a blocked read cancels up to a whole pipeline, which may hold up to
// maxPeerDepth requests), and none of them is a protocol violation. Blocks beyond those are
// thrown away, up to maxStrayBlocks; the next one drops the peer. Before, only the last 256
// cancelled requests were remembered, and honest seeders were dropped in the middle of a cold
// read with --prefetch and 16 MiB pieces.
func TestLateBlocksOfCancelledRequests(t *testing.T) {
	tor, p := benchTorrent(t, 2000, true)
	tor.mu.Lock()
	defer tor.mu.Unlock()
	p.depth, p.maxDepth = 600, 600

	tor.fillRequestsLocked(p)
	asked := append([]blockReq(nil), p.requests...)
	if len(asked) != 600 {
		t.Fatalf("%d requests in flight, want 600", len(asked))
	}
	// Cancel them all, the way preemptForReadLocked does.
	for len(p.requests) > 0 {
		k := len(p.requests) - 1
		r := p.requests[k]
		p.removeRequestAt(k)
		tor.forgetRequestLocked(p, r)
	}
	// The peer had sent them all before it read our cancels.
	for _, r := range asked {
		m := p2p.Message{ID: p2p.MsgPiece, Index: r.piece, Begin: r.begin, Payload: make([]byte, r.length)}
		if _, err := tor.handleBlockLocked(p, m); err != nil {
			t.Fatalf("late block %d+%d of a cancelled request: %v", r.piece, r.begin, err)
		}
	}
	// Beyond every cancelled request: a few stray blocks are thrown away, more drop the peer.
	extra := p2p.Message{ID: p2p.MsgPiece, Index: asked[0].piece, Begin: 0, Payload: make([]byte, asked[0].length)}
	for k := range maxStrayBlocks + 1 {
		w, err := tor.handleBlockLocked(p, extra)
		switch {
		case k < maxStrayBlocks && (err != nil || w.d != nil):
			t.Fatalf("stray block %d: %v, write %v; want it thrown away", k+1, err, w.d != nil)
		case k == maxStrayBlocks && !errors.Is(err, errProtocol):
			t.Fatalf("stray block %d: %v, want a protocol violation", k+1, err)
		}
	}

	// A choke (no fast extension) drops the peer's queue: nothing it sends after is late.
	p.strayBlocks = 0
	tor.fillRequestsLocked(p)
	tor.releaseChokedRequestsLocked(p)
	if p.lateBlocks != 0 {
		t.Fatalf("%d late blocks allowed after a choke without the fast extension", p.lateBlocks)
	}

	// A late block must still be a block of the torrent.
	tor.fillRequestsLocked(p)
	r := p.requests[0]
	p.removeRequestAt(0)
	tor.forgetRequestLocked(p, r)
	for _, bad := range []p2p.Message{
		{ID: p2p.MsgPiece, Index: 5000, Begin: 0, Payload: make([]byte, p2p.BlockSize)},
		{ID: p2p.MsgPiece, Index: r.piece, Begin: 1, Payload: make([]byte, p2p.BlockSize)},
		{ID: p2p.MsgPiece, Index: r.piece, Begin: p2p.BlockSize, Payload: make([]byte, p2p.BlockSize)},
	} {
		if _, err := tor.handleBlockLocked(p, bad); !errors.Is(err, errProtocol) {
			t.Errorf("block %d+%d after a cancel: %v, want a protocol violation", bad.Index, bad.Begin, err)
		}
		if p.lateBlocks != 1 {
			t.Fatalf("an invalid block used up the cancelled request's allowance")
		}
	}

	// A reject answers a request: an outstanding one is freed for others and leaves the
	// allowance as it is; one we had cancelled uses its allowance up (no block follows).
	out := p.requests[0]
	reject := func(r blockReq) {
		t.Helper()
		if err := tor.handleFastLocked(p, p2p.RejectRequest(r.piece, r.begin, r.length), false); err != nil {
			t.Fatal(err)
		}
	}
	reject(out)
	if p.hasRequest(int(out.piece), int(out.begin)/p2p.BlockSize) || p.lateBlocks != 1 {
		t.Fatalf("after a reject of an outstanding request: still held %v, late blocks %d, want false, 1",
			p.hasRequest(int(out.piece), int(out.begin)/p2p.BlockSize), p.lateBlocks)
	}
	if d := tor.downloads[int(out.piece)]; d != nil && d.reqs[int(out.begin)/p2p.BlockSize] != 0 {
		t.Fatal("a rejected block is still counted as requested")
	}
	reject(r)
	if p.lateBlocks != 0 {
		t.Fatalf("late blocks %d after the reject of the cancelled request, want 0", p.lateBlocks)
	}
}
