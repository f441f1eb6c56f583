package fetch

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"

	"github.com/gotfs/gotfs/p2p"
)

const (
	blockSize        = p2p.BlockSize
	tickEvery        = time.Second
	unchokeEvery     = 10 * time.Second
	optimisticEvery  = 30 * time.Second
	syncEvery        = 5 * time.Second
	maxDialing       = 8
	dialTimeout      = 10 * time.Second
	maxFailedDialing = 8 // a candidate that failed this often is forgotten
	staleRequest     = 20 * time.Second
	urgentPatience   = 3 * time.Second // a peer that sends nothing this long under a blocked read is passed over
)

func p2pHave(i int) p2p.Message { return p2p.Message{ID: p2p.MsgHave, Index: uint32(i)} }

// tickLoop runs the torrent's periodic duties: rates, snubs, choking, dialing, saving.
func (t *Torrent) tickLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	last := time.Now()
	// The first save comes syncEvery after the start, like every later one: an fsync makes
	// the disk's journal hold up the writes of pieces for a moment (about 0.1 s with a few
	// hundred MiB to flush), which a fresh download or stream should not pay in its first
	// second.
	lastSync := last
	var lastUnchoke, lastOptimistic time.Time
	for {
		t.mu.Lock()
		now := time.Now()
		t.updateRatesLocked(now.Sub(last))
		last = now
		t.checkSnubsLocked(now)
		if now.Sub(lastUnchoke) >= unchokeEvery {
			optimistic := now.Sub(lastOptimistic) >= optimisticEvery
			t.chokeRoundLocked(optimistic)
			lastUnchoke = now
			if optimistic {
				lastOptimistic = now
			}
		}
		t.logStarvedReadsLocked()
		t.sendPexLocked(now)
		t.dialMoreLocked(now)
		syncNow := t.dirtyStore && now.Sub(lastSync) >= syncEvery
		if syncNow {
			t.dirtyStore = false
			lastSync = now
		}
		t.mu.Unlock()
		if syncNow {
			if err := t.store.Sync(); err != nil {
				t.log.Error("save completion record", "err", err)
			}
		}
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkSnubsLocked takes requests away from peers that sent nothing for snubTimeout, and
// cancels single requests a peer seems to have dropped: still outstanding staleRequest after
// they were sent although blocks asked for later have arrived since.
func (t *Torrent) checkSnubsLocked(now time.Time) {
	for p := range t.peers {
		if len(p.requests) > 0 && !p.snubbed && now.Sub(p.lastBlock) > snubTimeout {
			p.snubbed = true
			t.log.Debug("peer snubbed us", "peer", p.addr)
			t.releaseRequestsLocked(p)
			t.wakeAllLocked()
			continue
		}
		dropped := false
		for k := 0; k < len(p.requests); k++ {
			r := p.requests[k]
			urgentStale := t.pt.prio[r.piece] == prioNow && now.Sub(r.sent) > urgentPatience && p.lastBlock.Before(r.sent)
			if urgentStale && !p.snubbed {
				// Nothing at all since a request a read waits on: ask others, not this peer.
				p.snubbed = true
				t.log.Debug("peer silent under a blocked read", "peer", p.addr, "piece", r.piece)
			}
			lost := now.Sub(r.sent) >= staleRequest && p.lastBlock.After(r.sent.Add(staleRequest/2))
			if !urgentStale && !lost {
				continue
			}
			p.removeRequestAt(k)
			k--
			t.forgetRequestLocked(p, r)
			p.out = append(p.out, p2p.Message{ID: p2p.MsgCancel, Index: r.piece, Begin: r.begin, Length: r.length})
			dropped = true
		}
		if dropped {
			t.log.Debug("requests the peer seems to have dropped were cancelled", "peer", p.addr)
			t.wakeAllLocked()
		}
	}
}

// chokeRoundLocked unchokes the best UploadSlots interested peers (by what they give us while we
// download, by what they take while we seed) plus one optimistic unchoke, and chokes the rest.
func (t *Torrent) chokeRoundLocked(rotateOptimistic bool) {
	if t.c.cfg.NoUpload {
		return
	}
	seeding := t.store.VerifiedCount() == t.info.NumPieces()
	peers := make([]*peer, 0, len(t.peers))
	cands := make([]chokeCandidate, 0, len(t.peers))
	for p := range t.peers {
		rate := p.downRate
		if seeding {
			rate = p.upRate
		}
		peers = append(peers, p)
		cands = append(cands, chokeCandidate{interested: p.peerInterested, optimistic: p.optimistic, rate: rate})
	}
	unchoke, optimistic := chooseUnchoked(cands, t.c.cfg.UploadSlots, rotateOptimistic, rand.IntN)
	for k, p := range peers {
		p.optimistic = k == optimistic
		t.setChokingLocked(p, !unchoke[k])
	}
}

// chokeCandidate is what the choker weighs of a peer.
type chokeCandidate struct {
	interested bool    // the peer wants to download from us
	optimistic bool    // it is the current optimistic unchoke
	rate       float64 // what it gives us while we download, what it takes while we seed
}

// chooseUnchoked is the choker: the slots interested candidates with the highest rates are
// unchoked, plus one optimistic unchoke among the other interested ones, kept from round to
// round unless rotate is set, it lost interest or it earned a regular slot. It returns which
// candidates to unchoke and the index of the optimistic one (-1: none). randIntN returns a
// random number in [0, n).
func chooseUnchoked(cands []chokeCandidate, slots int, rotate bool, randIntN func(n int) int) (unchoke []bool, optimistic int) {
	unchoke = make([]bool, len(cands))
	optimistic = -1
	var interested []int
	for k, c := range cands {
		if c.optimistic {
			optimistic = k
		}
		if c.interested {
			interested = append(interested, k)
		}
	}
	sort.SliceStable(interested, func(a, b int) bool { return cands[interested[a]].rate > cands[interested[b]].rate })
	for _, k := range interested[:min(max(slots, 0), len(interested))] {
		unchoke[k] = true
	}
	if rotate || optimistic < 0 || !cands[optimistic].interested || unchoke[optimistic] {
		optimistic = -1
		var rest []int
		for _, k := range interested {
			if !unchoke[k] {
				rest = append(rest, k)
			}
		}
		if len(rest) > 0 {
			optimistic = rest[randIntN(len(rest))]
		}
	}
	if optimistic >= 0 {
		unchoke[optimistic] = true
	}
	return unchoke, optimistic
}

// maybeUnchokeNewLocked unchokes a newly interested peer at once when a slot is free, instead of
// making it wait for the next choke round.
func (t *Torrent) maybeUnchokeNewLocked(p *peer) {
	if t.c.cfg.NoUpload || !p.amChoking {
		return
	}
	unchoked := 0
	for q := range t.peers {
		if !q.amChoking {
			unchoked++
		}
	}
	if unchoked < t.c.cfg.UploadSlots+1 {
		t.setChokingLocked(p, false)
	}
}

func (t *Torrent) setChokingLocked(p *peer, choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	id := p2p.MsgChoke
	if !choke {
		id = p2p.MsgUnchoke
		p.unchokedAt = time.Now()
		p.chokedRequests = 0
	} else {
		// BEP 3: a choke discards pending requests; BEP 6: rejects them, except allowed-fast ones.
		kept := p.uploads[:0]
		for _, u := range p.uploads {
			if p.fast.enabled && p.fast.out[u.piece] {
				kept = append(kept, u)
				continue
			}
			if p.fast.enabled {
				p.out = append(p.out, p2p.RejectRequest(u.piece, u.begin, u.length))
			}
		}
		p.uploads = kept
	}
	p.out = append(p.out, p2p.Message{ID: id})
	p.wake()
}

// logStarvedReadsLocked logs, once per piece, a read blocked for a while on a piece that no
// connected peer has.
func (t *Torrent) logStarvedReadsLocked() {
	const patience = 3 * time.Second
	now := time.Now().UnixNano()
	for _, i := range t.pt.urgent {
		if t.pt.prio[i] != prioNow || t.pt.avail[i] > 0 || t.noPeerLog[i] || now-t.pt.prioKey[i] < int64(patience) {
			continue
		}
		t.noPeerLog[i] = true
		t.log.Warn("read waiting for a piece no connected peer has", "piece", i, "peers", len(t.peers))
	}
}

// addCandidatesLocked remembers peers to connect to and dials them at once.
func (t *Torrent) addCandidatesLocked(addrs []netip.AddrPort) {
	for _, a := range addrs {
		t.candidateLocked(a)
	}
	// Bounded: forget candidates that are not connected when there are too many.
	for a, c := range t.candidates {
		if len(t.candidates) <= maxCandidates {
			break
		}
		if !c.connected {
			delete(t.candidates, a)
		}
	}
	t.dialMoreLocked(time.Now())
}

// candidateLocked returns the candidate at a, made if new (nil for an address no one can
// dial). Callers bound the candidates afterwards (addCandidatesLocked).
func (t *Torrent) candidateLocked(a netip.AddrPort) *candidate {
	if !a.IsValid() || a.Port() == 0 {
		return nil
	}
	c := t.candidates[a]
	if c == nil {
		c = &candidate{}
		t.candidates[a] = c
	}
	return c
}

// dialMoreLocked connects to candidates until MaxPeers are connected or being dialled.
func (t *Torrent) dialMoreLocked(now time.Time) {
	for addr, c := range t.candidates {
		if len(t.peers)+t.dialing >= t.c.cfg.MaxPeers || t.dialing >= maxDialing {
			return
		}
		if c.connected || now.Before(c.nextTry) || t.banned[addr.Addr()] || t.c.isSelf(addr) {
			continue
		}
		if t.connectedToLocked(addr) {
			continue
		}
		t.startDialLocked(addr, c)
	}
}

func (t *Torrent) connectedToLocked(addr netip.AddrPort) bool {
	for p := range t.peers {
		if p.addr == addr {
			return true
		}
	}
	return false
}

// startDialLocked starts a connection attempt to the candidate c at addr.
func (t *Torrent) startDialLocked(addr netip.AddrPort, c *candidate) {
	c.connected = true
	t.dialing++
	t.wg.Add(1)
	go t.dialPeer(addr, c, connectOptions{p2p: t.connOptions(), plaintext: c.plaintext, utp: c.utp})
}

// dialPeer connects to a candidate; opts carry what the candidate taught us about encryption
// and uTP (see Client.connectPeer).
func (t *Torrent) dialPeer(addr netip.AddrPort, c *candidate, opts connectOptions) {
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(t.ctx, dialTimeout)
	conn, hs, res, err := t.c.connectPeer(ctx, addr, t.hash, opts)
	cancel()
	t.mu.Lock()
	t.dialing--
	if res.fellBack {
		c.plaintext = true
	}
	if res.utp != utpUnknown {
		c.utp = res.utp
	}
	if err != nil {
		c.connected = false
		c.failures++
		c.nextTry = time.Now().Add(backoff(c.failures))
		punched := t.holepunchLocked(addr, c)
		if c.failures >= maxFailedDialing && !punched {
			delete(t.candidates, addr)
		}
		t.mu.Unlock()
		t.log.Debug("dial peer", "peer", addr, "err", err)
		return
	}
	c.failures = 0
	t.mu.Unlock()
	t.addPeer(conn, hs, false)
}
