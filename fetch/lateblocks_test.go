package fetch

import (
	"errors"
	"testing"

	"github.com/gotfs/gotfs/p2p"
)

// TestLateBlocksOfCancelledRequests: a peer may still send every block we cancelled (a
// preempt for a blocked read cancels up to a whole pipeline, which may hold up to
// maxPeerDepth requests), and none of them is a protocol violation; one more unrequested block
// is. Before, only the last 256 cancelled requests were remembered, and honest seeders were
// dropped in the middle of a cold read with --prefetch and 16 MiB pieces.
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
	extra := p2p.Message{ID: p2p.MsgPiece, Index: asked[0].piece, Begin: 0, Payload: make([]byte, asked[0].length)}
	if _, err := tor.handleBlockLocked(p, extra); !errors.Is(err, errProtocol) {
		t.Fatalf("a block beyond every cancelled request: %v, want a protocol violation", err)
	}

	// A choke (no fast extension) drops the peer's queue: nothing it sends after is late.
	tor.fillRequestsLocked(p)
	asked = append(asked[:0], p.requests...)
	tor.releaseChokedRequestsLocked(p)
	m := p2p.Message{ID: p2p.MsgPiece, Index: asked[0].piece, Begin: asked[0].begin, Payload: make([]byte, asked[0].length)}
	if _, err := tor.handleBlockLocked(p, m); !errors.Is(err, errProtocol) {
		t.Fatalf("a block after a choke released its request: %v, want a protocol violation", err)
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
	}
}
