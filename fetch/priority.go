package fetch

// prioCls is a piece's priority class. Higher classes are always fetched first.
type prioCls uint8

const (
	// prioNone: nobody wants the piece now (or it is verified).
	prioNone prioCls = iota
	// prioNormal: wanted in the background (download, --prefetch); rarest first.
	prioNormal
	// prioReadahead: inside a reader's readahead window or an open file's head/tail; nearer first.
	prioReadahead
	// prioNow: a read is blocked on it; oldest waiting read first.
	prioNow
)

// hintKeyBase orders head/tail hints after every real readahead window.
const hintKeyBase = int64(1) << 40

// Priorities are derived state: a piece's base class comes from the background wish
// (basePrio), and the readers' claims raise pieces above it. Every piece above its base is in
// pt.urgent, so a change of the claims costs O(pieces claimed), not O(pieces).
// Inputs weighed: piece verified; piece wanted in the background and background on; each
// reader's blocked reads (with their start time), readahead window and open-file hints.
// Re-check these when making changes.

// claim is a reader's wish for pieces [first, last): class cls, with ordering key
// key+(i-first) for piece i (so a window is fetched nearest first).
type claim struct {
	first, last int
	cls         prioCls
	key         int64
	// startsStream marks a blocked read that starts a stream (the first read of a handle,
	// a seek): its blocks go to a second peer sooner (streamStart).
	startsStream bool
}

// basePrio is piece i's priority class when no reader claims it.
func (pt *pieceTable) basePrio(i int) prioCls {
	if pt.background && pt.wanted[i] && !pt.verified(i) {
		return prioNormal
	}
	return prioNone
}

// setBackground turns the background fetch of wanted pieces on or off; the caller then
// derives every priority again (setClaims with all set).
func (pt *pieceTable) setBackground(on bool) { pt.background = on }

// setClaims derives the priorities from the readers' claims. With all, every piece goes back
// to its base first (after a change of the background wish: O(pieces)); otherwise only the
// pieces claimed last time do (O(pieces claimed then and now)).
func (pt *pieceTable) setClaims(claims []claim, all bool) {
	pt.gen++ // a piece a reader let go may be a background one again
	if all {
		for i := range pt.prio {
			pt.prio[i], pt.prioKey[i] = pt.basePrio(i), 0
		}
	} else {
		for _, i := range pt.urgent {
			pt.prio[i], pt.prioKey[i] = pt.basePrio(i), 0
		}
	}
	pt.urgent = pt.urgent[:0]
	pt.now = pt.now[:0]
	pt.streamStartKey = 0
	var oldest int64
	for _, c := range claims {
		for i := max(c.first, 0); i < c.last && i < len(pt.prio); i++ {
			pt.raise(i, c.cls, c.key+int64(i-c.first))
			pt.urgent = append(pt.urgent, i)
			if c.cls == prioNow {
				pt.now = append(pt.now, i)
			}
		}
		if c.cls == prioNow && (oldest == 0 || c.key < oldest) {
			oldest = c.key
			pt.streamStartKey = 0
			if c.startsStream {
				pt.streamStartKey = c.key
			}
		}
	}
}

// raise lifts piece i to class c with ordering key k, keeping the better of two claims.
func (pt *pieceTable) raise(i int, c prioCls, k int64) {
	if pt.verified(i) {
		return
	}
	switch {
	case c > pt.prio[i]:
		pt.prio[i], pt.prioKey[i] = c, k
	case c == pt.prio[i] && k < pt.prioKey[i]:
		pt.prioKey[i] = k
	}
}

// streamStart reports whether piece i is under the oldest blocked read and that read starts a
// stream (the first read of a handle or a seek, not one inside a sequential stream): its
// blocks go to a second peer after oldestReadLateAfter.
func (pt *pieceTable) streamStart(i int) bool {
	return pt.streamStartKey != 0 && pt.prio[i] == prioNow && pt.prioKey[i] == pt.streamStartKey
}

// better reports whether piece a should be fetched before piece b.
func (pt *pieceTable) better(a, b int) bool {
	if pt.prio[a] != pt.prio[b] {
		return pt.prio[a] > pt.prio[b]
	}
	if pt.prio[a] == prioNormal {
		return pt.avail[a] < pt.avail[b]
	}
	return pt.prioKey[a] < pt.prioKey[b]
}

// recomputeAllPrioritiesLocked derives every piece's priority afresh: for changes of the
// background wish (start, SetBackground, the wanted set). O(pieces).
func (t *Torrent) recomputeAllPrioritiesLocked() {
	t.pt.setClaims(t.claimsLocked(), true)
}

// recomputePriorityLocked derives the priorities again after a change of the readers (a read
// blocks or ends, a window moves, a reader opens or closes). O(pieces the readers claim).
func (t *Torrent) recomputePriorityLocked() {
	t.pt.setClaims(t.claimsLocked(), false)
}

// claimsLocked collects every reader's claims.
func (t *Torrent) claimsLocked() []claim {
	cs := t.claimScratch[:0]
	for r := range t.readers {
		cs = r.appendClaimsLocked(cs)
	}
	t.claimScratch = cs
	return cs
}
