package fetch

import (
	"testing"
	"time"

	"github.com/gotfs/gotfs/p2p"
)

// TestReadaheadDeadlines: over one reader's readahead window of 16 KiB pieces, a fast peer
// (20 MB/s) takes the nearest piece; a slow one (1 MB/s, less than half the fastest) the first
// piece it can deliver before the reader gets there at the swarm's 21 MB/s; a peer whose rate is
// not known yet only a piece 2 s of reading ahead. A piece a read waits on goes to the slow peer
// only when the fast one cannot be asked for it. With no rate known, nothing is held back.
func TestReadaheadDeadlines(t *testing.T) {
	const n = 4000
	tor, fast := benchTorrent(t, n, false)
	tor.mu.Lock()
	defer tor.mu.Unlock()
	newPeer := func() *peer {
		return &peer{t: tor, has: fast.has.Clone(), hasCount: n, amInterested: true, depth: 4, maxDepth: 4,
			wakeCh: make(chan struct{}, 1), rateSince: time.Now()}
	}
	slow, unknown := newPeer(), newPeer()
	fast.rateSince = time.Now()
	for _, p := range []*peer{fast, slow, unknown} {
		p.peerChoking = false
		tor.peers[p] = struct{}{}
		defer delete(tor.peers, p) // they have no connection to close
	}
	pick := func(p *peer) int {
		var skip uint64
		return tor.picker.pick(tor.pt, p, false, &skip)
	}
	tor.pt.setClaims([]claim{{first: 0, last: n, cls: prioReadahead}}, false)

	// Nothing known: everyone takes the nearest piece.
	if got := pick(slow); got != 0 {
		t.Fatalf("with no rate known the slow peer was given piece %d, want 0", got)
	}

	fast.sendRate, slow.sendRate = 20e6, 1e6
	tor.swarmRatesAt = time.Time{} // sum the rates again now
	if got := pick(fast); got != 0 {
		t.Fatalf("fast peer: piece %d, want 0", got)
	}
	// 16 KiB at 1 MB/s take 16.4 ms; at 21 MB/s the reader reads 344,064 bytes meanwhile:
	// piece 21 is the first it does not reach sooner.
	if got := pick(slow); got != 21 {
		t.Fatalf("slow peer: piece %d, want 21", got)
	}
	// With requests queued it must look farther: 4 blocks more take 65.5 ms more.
	for range 4 {
		slow.requests = append(slow.requests, blockReq{})
	}
	if got := pick(slow); got != 105 {
		t.Fatalf("slow peer with 4 requests queued: piece %d, want 105", got)
	}
	slow.requests = nil
	// Unknown rate: 2 s at 21 MB/s = 42,000,000 bytes ahead, piece 2564 and on.
	if got := pick(unknown); got != 2564 {
		t.Fatalf("peer of unknown rate: piece %d, want 2564", got)
	}

	// A read waits on piece 3000: not the slow peer's while the fast one could be asked.
	tor.pt.setClaims([]claim{
		{first: 3000, last: 3001, cls: prioNow, key: time.Now().UnixNano()},
		{first: 0, last: 100, cls: prioReadahead},
	}, false)
	if got := pick(slow); got == 3000 {
		t.Fatal("the slow peer was given the piece a read waits on while a fast peer has it")
	}
	if got := pick(fast); got != 3000 {
		t.Fatalf("fast peer: piece %d, want the one a read waits on (3000)", got)
	}
	fast.has = p2p.NewBitfield(n) // the fast peer cannot be asked for it any more
	tor.swarmRatesAt = time.Time{}
	if got := pick(slow); got != 3000 {
		t.Fatalf("slow peer, no fast peer has the read's piece: piece %d, want 3000", got)
	}

	// A fast peer that chokes us does not count: the slow one is then the fastest.
	fast.has = slow.has.Clone()
	fast.peerChoking = true
	tor.swarmRatesAt = time.Time{}
	tor.pt.setClaims([]claim{{first: 0, last: n, cls: prioReadahead}}, false)
	if got := pick(slow); got != 0 {
		t.Fatalf("slow peer while the fast one chokes us: piece %d, want 0", got)
	}
}
