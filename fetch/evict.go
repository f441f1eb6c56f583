package fetch

import "sort"

// Cache eviction.
//
// Inputs the choice weighs: the client's limit (Config.CacheLimit) against the verified bytes of
// all its torrents; each verified piece's last use (a read or a readahead that covered it);
// pieces a reader waits on, reads ahead into, or keeps as an open file's head or tail are never
// evicted; neither is a piece pinned by a read that is still copying or splicing it
// (Reader.WaitPinned). Least recently used goes first, down to evictTarget of the limit so
// eviction runs in batches. Candidates are picked under each torrent's lock, which is then
// released; evict takes it again and the piece table re-checks every rule (verified, not in
// flight, not pinned, not protected: pieceTable.beginEvict) before it marks the piece in flight
// and not verified, so a pin or a reader that came in between
// keeps its piece, and a read that comes later waits for the piece to be fetched again (or,
// when the eviction fails, for it to be verified again). Re-check these when making changes.

const evictTarget = 0.95

// evictCandidate is a verified piece that may be evicted.
type evictCandidate struct {
	t       *Torrent
	piece   int
	lastUse int64
	size    int64
}

// enforceCacheLimit evicts least recently used pieces until the client's torrents fit the limit.
// Verifiers call it after storing a piece and wait for it: while one evicts, the others queue
// behind it, so the disk never holds more than the limit plus the pieces being verified (and
// what readers protect).
func (c *Client) enforceCacheLimit() {
	limit := c.cfg.CacheLimit
	if limit <= 0 || c.verifiedBytes.Load() <= limit {
		return
	}
	c.evicting.Lock()
	defer c.evicting.Unlock()
	for range 8 { // pieces verified meanwhile may need another round
		if c.verifiedBytes.Load() <= limit || !c.evictOnce(limit) {
			return
		}
	}
}

// evictOnce evicts down to evictTarget of limit and reports whether it evicted anything.
func (c *Client) evictOnce(limit int64) bool {
	over := c.verifiedBytes.Load() - int64(float64(limit)*evictTarget)
	if over <= 0 {
		return false
	}
	c.mu.Lock()
	ts := make([]*Torrent, 0, len(c.torrents))
	for _, t := range c.torrents {
		ts = append(ts, t)
	}
	c.mu.Unlock()
	var cands []evictCandidate
	for _, t := range ts {
		t.mu.Lock()
		protected := t.protectedLocked()
		for i := range t.info.NumPieces() {
			if t.pt.evictable(i, protected) {
				cands = append(cands, evictCandidate{t, i, t.pt.lastUse[i], t.info.PieceSize(i)})
			}
		}
		t.mu.Unlock()
	}
	chosen := chooseEvictions(cands, over)
	if c.testHookEvictPicked != nil {
		c.testHookEvictPicked()
	}
	for t, pieces := range chosen {
		t.evict(pieces)
	}
	return len(chosen) > 0
}

// chooseEvictions is the eviction policy: the least recently used candidates, oldest first
// (pieces used at the same moment in the order given), until their sizes add up to over. It
// sorts cands in place and returns the chosen pieces per torrent.
func chooseEvictions(cands []evictCandidate, over int64) map[*Torrent][]int {
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].lastUse < cands[b].lastUse })
	chosen := map[*Torrent][]int{}
	for _, cd := range cands {
		if over <= 0 {
			break
		}
		chosen[cd.t] = append(chosen[cd.t], cd.piece)
		over -= cd.size
	}
	return chosen
}

// protectedLocked marks the pieces readers claim: those they wait on, read ahead into, or
// keep as an open file's head or tail.
func (t *Torrent) protectedLocked() []bool {
	p := make([]bool, t.info.NumPieces())
	for _, c := range t.claimsLocked() {
		for i := max(c.first, 0); i < c.last && i < len(p); i++ {
			p[i] = true
		}
	}
	return p
}

// evict punches the given verified pieces out of the storage. They were picked earlier under
// an earlier hold of t.mu: a piece that was pinned or came under a reader's protection since
// is kept (the decision and the pins are taken under the same hold of t.mu).
func (t *Torrent) evict(pieces []int) {
	t.mu.Lock()
	protected := t.protectedLocked()
	var keep []int
	for _, i := range pieces {
		// The piece stops being verified first, so nobody starts to read it while its
		// bytes go: a WaitPinned from now on sees it missing and waits for it again.
		if t.pt.beginEvict(i, protected) {
			keep = append(keep, i)
		}
	}
	t.recomputePriorityLocked()
	t.mu.Unlock()
	if len(keep) == 0 {
		return
	}
	if t.c.testHookEvicting != nil {
		t.c.testHookEvicting(t, keep)
	}
	err := t.store.EvictPieces(keep)
	t.mu.Lock()
	defer t.mu.Unlock()
	waited := false
	for _, i := range keep {
		t.pt.endEvict(i)
		if t.pt.verified(i) {
			// Not evicted after all: the bytes are still whole, and EvictPieces verified
			// them again. Reads that began to wait for the piece meanwhile can go on.
			if ch := t.waiters[i]; ch != nil {
				close(ch)
				delete(t.waiters, i)
			}
			continue
		}
		t.c.verifiedBytes.Add(-t.info.PieceSize(i))
		t.stats.Evicted++
		if t.waiters[i] != nil {
			waited = true
		}
	}
	if err != nil {
		t.log.Error("evict pieces", "err", err)
	}
	t.recomputePriorityLocked()
	if waited {
		// A read began to wait for an evicted piece while it was busy, so no peer was given
		// it: now that it may be fetched, the peers must look for work.
		t.wakeAllLocked()
	}
	t.log.Debug("evicted pieces", "count", len(keep))
}
