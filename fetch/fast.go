package fetch

import (
	"fmt"

	"github.com/gotfs/gotfs/p2p"
)

// Fast extension (BEP 6).
//
// Inputs weighed: both handshakes set the fast bit (conn.FastEnabled); what we have (have-all
// and have-none replace the bitfield); the allowed-fast set we give a peer (pieces it may
// request while we choke it, computed from its address as BEP 6 says) and the set it gives us
// (pieces we may request while it chokes us); with the extension a request we will not serve
// is rejected, never dropped silently, and a choke does not cancel the peer's requests of
// allowed-fast pieces. Re-check these when making changes.

// allowedFastCount is how many pieces we let each peer fetch while it is choked.
const allowedFastCount = p2p.DefaultAllowedFast

// maxAllowedFastIn bounds the allowed-fast pieces we remember from one peer.
const maxAllowedFastIn = 64

// fastState is the BEP 6 state of one peer.
type fastState struct {
	enabled bool
	// out is the allowed-fast set we gave the peer; in the set it gave us.
	out map[uint32]bool
	in  map[uint32]bool
}

// sendFastHelloLocked queues what a fast peer gets instead of a bitfield, and its
// allowed-fast set.
func (t *Torrent) sendFastHelloLocked(p *peer) {
	switch {
	case t.store.VerifiedCount() == 0:
		p.out = append(p.out, p2p.HaveNone())
	case t.store.VerifiedCount() == t.info.NumPieces():
		p.out = append(p.out, p2p.HaveAll())
		t.tellBitfieldLocked(p) // every piece: told
	default:
		p.out = append(p.out, p2p.Message{ID: p2p.MsgBitfield, Payload: t.tellBitfieldLocked(p)})
	}
	if t.c.cfg.NoUpload {
		return
	}
	p.fast.out = map[uint32]bool{}
	for _, i := range p2p.AllowedFastSet(t.hash, p.addr.Addr(), t.info.NumPieces(), allowedFastCount) {
		p.fast.out[i] = true
		p.out = append(p.out, p2p.AllowedFast(i))
	}
}

// handleFastLocked handles the BEP 6 messages; first says whether m is the peer's first
// message (have-all and have-none must be).
func (t *Torrent) handleFastLocked(p *peer, m p2p.Message, first bool) error {
	switch m.ID {
	case p2p.MsgHaveAll, p2p.MsgHaveNone:
		if !first {
			return fmt.Errorf("%w: %v after other messages", errProtocol, m.ID)
		}
		if m.ID == p2p.MsgHaveAll {
			for i := range t.pt.len() {
				p.has.Set(i)
			}
			p.hasCount = t.peerHasLocked(p, 1)
			p.wake()
			return t.checkBothSeedersLocked(p)
		}
	case p2p.MsgRejectRequest:
		for k, r := range p.requests {
			if r.piece == m.Index && r.begin == m.Begin && r.length == m.Length {
				p.removeRequestAt(k)
				t.freeBlockLocked(r) // answered: no block follows
				t.wakeAllLocked()
				return nil
			}
		}
		p.takeLateBlock() // the answer to a request we cancelled or released
	case p2p.MsgAllowedFast:
		if p.fast.in == nil {
			p.fast.in = map[uint32]bool{}
		}
		if len(p.fast.in) < maxAllowedFastIn {
			p.fast.in[m.Index] = true
			p.wake()
		}
	case p2p.MsgSuggestPiece:
		// A hint only; our picker has better information (readers, rarity).
	}
	return nil
}

// canRequest reports whether we may ask p for piece i now: it has the piece, and it does not
// choke us or let us have this piece fast.
func (p *peer) canRequest(i int) bool {
	return p.has.Has(i) && (!p.peerChoking || p.fast.in[uint32(i)])
}

// rejectLocked tells a fast peer we will not serve its request.
func (p *peer) rejectLocked(m p2p.Message) {
	if p.fast.enabled {
		p.out = append(p.out, p2p.RejectRequest(m.Index, m.Begin, m.Length))
		p.wake()
	}
}
