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
// (basePrioLocked), and readers raise the pieces they claim above it. Every piece above its
// base is in t.urgent, so a change of the readers costs O(pieces they claim), not O(pieces).
// Inputs weighed: piece verified; piece wanted in the background and background on; each
// reader's blocked reads (with their start time), readahead window and open-file hints.
// Re-check these when making changes.

// basePrioLocked is piece i's priority class when no reader claims it.
func (t *Torrent) basePrioLocked(i int) prioCls {
	if t.opts.Background && t.wanted[i] && !t.store.Verified(i) {
		return prioNormal
	}
	return prioNone
}

// recomputeAllPrioritiesLocked derives every piece's priority afresh: for changes of the
// background wish (start, SetBackground, the wanted set). O(pieces).
func (t *Torrent) recomputeAllPrioritiesLocked() {
	t.pickGen++
	for i := range t.prio {
		t.prio[i], t.prioKey[i] = t.basePrioLocked(i), 0
	}
	t.raiseReadersLocked()
}

// recomputePriorityLocked re-derives the priorities after a change of the readers (a read
// blocks or ends, a window moves, a reader opens or closes): the pieces raised last time go
// back to their base, then the readers raise theirs. O(pieces the readers claim).
func (t *Torrent) recomputePriorityLocked() {
	t.pickGen++ // a piece a reader let go may be a background one again
	for _, i := range t.urgent {
		t.prio[i], t.prioKey[i] = t.basePrioLocked(i), 0
	}
	t.raiseReadersLocked()
}

// raiseReadersLocked raises the pieces each reader claims and lists them in t.urgent.
func (t *Torrent) raiseReadersLocked() {
	defer t.collectUrgentLocked()
	var oldest int64
	t.streamStartKey = 0
	for r := range t.readers {
		for i, since := range r.waits {
			ns := since.UnixNano()
			t.raise(i, prioNow, ns)
			if oldest == 0 || ns < oldest {
				oldest = ns
				t.streamStartKey = 0
				if r.window <= minReadahead { // the read starts a stream (first read, seek)
					t.streamStartKey = ns
				}
			}
		}
		for i := r.raFirst; i < r.raLast; i++ {
			t.raise(i, prioReadahead, int64(i-r.raFirst))
		}
		for _, h := range r.hints {
			for i := h[0]; i < h[1]; i++ {
				t.raise(i, prioReadahead, hintKeyBase+int64(i-h[0]))
			}
		}
	}
}

// raise lifts piece i to class c with ordering key k, keeping the better of two claims.
func (t *Torrent) raise(i int, c prioCls, k int64) {
	if i < 0 || i >= len(t.prio) || t.store.Verified(i) {
		return
	}
	switch {
	case c > t.prio[i]:
		t.prio[i], t.prioKey[i] = c, k
	case c == t.prio[i] && k < t.prioKey[i]:
		t.prioKey[i] = k
	}
}

// streamStartLocked reports whether piece i is under the oldest blocked read and that read
// starts a stream (the first read of a handle or a seek, not one inside a sequential stream):
// its blocks go to a second peer after oldestReadLateAfter.
func (t *Torrent) streamStartLocked(i int) bool {
	return t.streamStartKey != 0 && t.prio[i] == prioNow && t.prioKey[i] == t.streamStartKey
}

// better reports whether piece a should be fetched before piece b.
func (t *Torrent) better(a, b int) bool {
	if t.prio[a] != t.prio[b] {
		return t.prio[a] > t.prio[b]
	}
	if t.prio[a] == prioNormal {
		if t.avail[a] != t.avail[b] {
			return t.avail[a] < t.avail[b]
		}
		return false
	}
	return t.prioKey[a] < t.prioKey[b]
}

// collectUrgentLocked lists the pieces the readers claim (above their base priority), so the
// picker and the next recompute can look at them without scanning every piece.
func (t *Torrent) collectUrgentLocked() {
	t.urgent = t.urgent[:0]
	for r := range t.readers {
		for i := range r.waits {
			t.urgent = append(t.urgent, i)
		}
		for i := r.raFirst; i < r.raLast; i++ {
			t.urgent = append(t.urgent, i)
		}
		for _, h := range r.hints {
			for i := h[0]; i < h[1]; i++ {
				t.urgent = append(t.urgent, i)
			}
		}
	}
}
