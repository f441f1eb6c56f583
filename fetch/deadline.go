package fetch

import (
	"time"

	"github.com/gotfs/gotfs/p2p"
)

// Readahead deadlines. A readahead piece is needed when its reader gets there, and a reader
// that copies (cp) consumes at the swarm's rate. A peer much slower than the fastest one that
// takes a piece just ahead of the reader makes the reader wait for it, and the duplicate
// request for a late block then queues behind a fast peer's whole pipeline: on a swarm of two
// near 20 MB/s seeders and two far 1 MB/s ones, a cold cp of 45 MB waited 0.2-1 s several
// times. So a peer less than slowPeerShare as fast as the fastest one takes a readahead piece
// (or blocks of one in flight) only if it can deliver them, after the requests it holds,
// before the reader reaches them at the swarm's rate; the pieces farther ahead are left to it.
// A blocked read's piece goes to it only when no fast peer could be asked for it. Head and
// tail hints and the background download have no deadline.
//
// Inputs weighed: each peer's rate while it sends (peer.sendRate, or before the first rate
// update its bytes so far), the requests it holds, the total and fastest rate of the peers
// that may be asked now (not choking us, not snubbed), and how far ahead of its reader a piece
// lies (pieceTable.aheadOfReader). Re-check these when making changes.

const (
	// slowPeerShare: a peer below this fraction of the fastest peer's rate is held to deadlines.
	slowPeerShare = 0.5
	// rateWindowMin is the shortest time a rate is estimated over before the first update.
	rateWindowMin = 100 * time.Millisecond
	// swarmRatesEvery bounds how often swarmRatesLocked sums the peers' rates again.
	swarmRatesEvery = 20 * time.Millisecond
	// probeLead: a peer of unknown rate, once others' are known, takes only pieces its reader
	// needs this long from now or later (a far peer's round trip plus a piece at a slow rate).
	probeLead = 2 * time.Second
)

// rateEstimate is p's download rate in bytes per second while it sends: the smoothed rate of
// the ticks in which it sent anything, or before the first of them what it sent since it
// connected; 0 while unknown.
func (p *peer) rateEstimate(now time.Time) float64 {
	if p.sendRate > 0 {
		return p.sendRate
	}
	if el := now.Sub(p.rateSince); el >= rateWindowMin && p.recvBytes > 0 {
		return float64(p.recvBytes) / el.Seconds()
	}
	return 0
}

// swarmRatesLocked returns the sum and the largest of the rate estimates of the peers that
// may be asked for blocks now (not choking us, not snubbed), summed again at most every
// swarmRatesEvery (a pick must not cost O(peers)).
func (t *Torrent) swarmRatesLocked(now time.Time) (total, fastest float64) {
	if now.Sub(t.swarmRatesAt) >= swarmRatesEvery {
		t.swarmTotal, t.swarmFastest = 0, 0
		clear(t.fastCan)
		for p := range t.peers {
			if p.peerChoking || p.snubbed {
				continue // a fast peer that chokes us delivers nothing now
			}
			r := p.rateEstimate(now)
			t.swarmTotal += r
			t.swarmFastest = max(t.swarmFastest, r)
		}
		t.swarmRatesAt = now
	}
	return t.swarmTotal, t.swarmFastest
}

// inTime reports whether p should take piece i (or blocks of it) as far as its reader's
// deadline goes (see above). It is true for a piece no reader is heading for, while no rate is
// known, and for a peer at least slowPeerShare as fast as the fastest. A slower peer must be
// able to deliver what it would take, after the requests it holds, before the reader gets
// there at the swarm's rate; a peer whose rate is not known yet (the far ones connect last)
// takes only pieces the reader needs probeLead or more from now. A piece a read already waits
// on goes to a slow peer only when no fast peer could be asked for it.
func (p *peer) inTime(i int, size int64) bool {
	t := p.t
	ahead := t.pt.aheadOfReader(i)
	if ahead < 0 {
		return true
	}
	now := time.Now()
	total, fastest := t.swarmRatesLocked(now)
	rate := p.rateEstimate(now)
	if total <= 0 || rate >= slowPeerShare*fastest {
		return true
	}
	lead := float64(ahead) / total // seconds until the reader gets there
	queued := float64(len(p.requests)*p2p.BlockSize) + float64(size)
	switch {
	case rate > 0 && queued/rate <= lead:
		return true
	case rate <= 0 && lead >= probeLead.Seconds():
		return true
	case ahead == 0:
		return !t.fastPeerCanLocked(i, slowPeerShare*fastest, now)
	}
	return false
}

// fastPeerCanLocked reports whether a peer at least minRate fast, not snubbed, may be asked
// for piece i now. The answer is kept until the rates are summed again (swarmRatesLocked), so
// that many slow peers looking at a blocked read's piece do not cost O(peers) each.
func (t *Torrent) fastPeerCanLocked(i int, minRate float64, now time.Time) bool {
	if can, ok := t.fastCan[i]; ok {
		return can
	}
	can := false
	for q := range t.peers {
		if !q.snubbed && q.canRequest(i) && q.rateEstimate(now) >= minRate {
			can = true
			break
		}
	}
	if t.fastCan == nil {
		t.fastCan = map[int]bool{}
	}
	t.fastCan[i] = can
	return can
}

// aheadOfReader is how far ahead of its reader piece i lies, in bytes: 0 for a piece a read
// waits on, its distance for a piece in a readahead window; -1 for any other piece (a head or
// tail hint, the background download).
func (pt *pieceTable) aheadOfReader(i int) int64 {
	switch {
	case pt.prio[i] == prioNow:
		return 0
	case pt.prio[i] != prioReadahead || pt.prioKey[i] >= hintKeyBase:
		return -1
	}
	return pt.prioKey[i] * pt.store.Info().PieceLength
}
