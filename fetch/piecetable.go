package fetch

import (
	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/torrentfile"
)

// pieceTable alone owns the state of every piece of one torrent: whether it is wanted in the
// background, its priority, how many connected peers have it, whether it is in flight (being
// fetched, verified or evicted), how many reads and uploads pin it, and when it was last used.
// Whether a piece is verified is the storage's bit, read through verified: one bit that the
// engine, the picker and the file system all read.
//
// It holds no lock of its own: its owner (Torrent) holds t.mu around every call, so pinning,
// the choice of what to evict and the eviction itself are decided under one lock. Its methods
// keep these invariants (checkInvariants, in the tests, states them in code; the property test
// runs it after every step of random operation sequences):
//   - a pinned piece is never evicted (beginEvict refuses it);
//   - a verified piece has priority none;
//   - wantedLeft is the number of wanted pieces that are not verified;
//   - every piece whose priority is above its base is listed in urgent, so a change of the
//     readers' claims costs O(pieces claimed), not O(pieces).
type pieceTable struct {
	store *cache.Storage

	background bool      // every wanted piece is fetched at normal priority
	wanted     []bool    // pieces the user wants fetched in the background
	wantedLeft int       // wanted pieces not yet verified
	avail      []int     // how many connected peers have each piece
	prio       []prioCls // priority class of each piece
	prioKey    []int64   // ordering inside a class (smaller first)
	busy       []bool    // being fetched, verified or evicted: not to be picked
	pins       map[int]int
	lastUse    []int64 // when each piece was last read (unix ns), for eviction
	urgent     []int   // pieces claimed above their base priority
	now        []int   // pieces a blocked read waits on (claimed at prioNow), a part of urgent
	// streamStartKey is the key (wait start, unix ns) of the pieces under the oldest blocked
	// read when that read starts a stream, else 0 (streamStart).
	streamStartKey int64
	// gen counts the events that may make a piece startable in the background (a piece no
	// longer busy, priorities derived again): a peer whose scan found nothing skips the next
	// one until it changes, so an endgame does not scan every piece per received block. It is
	// never 0, which peers use for "unknown".
	gen uint64
}

// newPieceTable makes the table of a torrent whose verified bits are in store.
func newPieceTable(store *cache.Storage, background bool) *pieceTable {
	n := store.Info().NumPieces()
	return &pieceTable{
		store:      store,
		background: background,
		wanted:     make([]bool, n),
		avail:      make([]int, n),
		prio:       make([]prioCls, n),
		prioKey:    make([]int64, n),
		busy:       make([]bool, n),
		pins:       map[int]int{},
		lastUse:    make([]int64, n),
		gen:        1,
	}
}

// len is the number of pieces.
func (pt *pieceTable) len() int { return len(pt.prio) }

// verified reports whether piece i's hash matched (the storage's bit).
func (pt *pieceTable) verified(i int) bool { return pt.store.Verified(i) }

// setWanted marks the pieces of the files include selects (nil: every file) as wanted; pad
// files and empty files want nothing. The caller derives the priorities again (setClaims
// with all set).
func (pt *pieceTable) setWanted(info *torrentfile.Info, include func(fileIndex int) bool) {
	clear(pt.wanted)
	for fi, f := range info.Files {
		if f.Length == 0 || f.Padding || (include != nil && !include(fi)) {
			continue
		}
		first, last := info.PieceRange(f.Offset, f.Length)
		for i := first; i < last; i++ {
			pt.wanted[i] = true
		}
	}
	pt.wantedLeft = 0
	for i, w := range pt.wanted {
		if w && !pt.verified(i) {
			pt.wantedLeft++
		}
	}
}

// complete reports whether every wanted piece is verified.
func (pt *pieceTable) complete() bool { return pt.wantedLeft == 0 }

// backgroundWork reports whether a background scan can find anything to start.
func (pt *pieceTable) backgroundWork() bool { return pt.background && pt.wantedLeft > 0 }

// wants reports whether piece i is one we would fetch now.
func (pt *pieceTable) wants(i int) bool { return pt.prio[i] != prioNone && !pt.verified(i) }

// pickable reports whether piece i may be started now by a peer that has it.
func (pt *pieceTable) pickable(i int) bool {
	return pt.prio[i] != prioNone && !pt.busy[i] && !pt.verified(i)
}

// startFetch marks piece i in flight (a download of it starts).
func (pt *pieceTable) startFetch(i int) { pt.busy[i] = true }

// endFetch marks piece i no longer in flight: its download was dropped, or its verification
// ended (markVerified records a success).
func (pt *pieceTable) endFetch(i int) {
	pt.busy[i] = false
	pt.gen++
}

// markVerified records that piece i's hash matched (the storage set its bit): it is no longer
// wanted or claimed, and counts as used now.
func (pt *pieceTable) markVerified(i int, now int64) {
	pt.busy[i] = false
	pt.gen++
	pt.lastUse[i] = now
	pt.prio[i], pt.prioKey[i] = prioNone, 0
	if pt.wanted[i] {
		pt.wantedLeft--
	}
}

// peerHas changes the availability of piece i by delta (a have, a bitfield, a departure).
func (pt *pieceTable) peerHas(i, delta int) { pt.avail[i] += delta }

// used records that pieces [first, last) were just read or are about to be.
func (pt *pieceTable) used(first, last int, now int64) {
	for i := max(first, 0); i < last && i < len(pt.lastUse); i++ {
		pt.lastUse[i] = now
	}
}

// pin keeps pieces [first, last) from eviction until unpin; pins nest.
func (pt *pieceTable) pin(first, last int) {
	for i := first; i < last; i++ {
		pt.pins[i]++
	}
}

// pinVerified pins pieces [first, last) only if every one is verified, and reports whether it
// did.
func (pt *pieceTable) pinVerified(first, last int) bool {
	for i := first; i < last; i++ {
		if !pt.verified(i) {
			return false
		}
	}
	pt.pin(first, last)
	return true
}

// unpin releases one pin of each piece of [first, last).
func (pt *pieceTable) unpin(first, last int) {
	for i := first; i < last; i++ {
		if pt.pins[i]--; pt.pins[i] <= 0 {
			delete(pt.pins, i)
		}
	}
}

// pinned reports whether a read or an upload pins piece i.
func (pt *pieceTable) pinned(i int) bool { return pt.pins[i] > 0 }

// evictable reports whether piece i may be evicted: verified, not in flight, not pinned, and
// not protected by a reader (protected may be nil).
func (pt *pieceTable) evictable(i int, protected []bool) bool {
	return pt.verified(i) && !pt.busy[i] && !pt.pinned(i) && (protected == nil || !protected[i])
}

// beginEvict starts the eviction of piece i if it is evictable, and reports whether it did.
// The piece stops being verified at once, so a read that comes now waits for it to be fetched
// again instead of reading bytes that are about to go; it stays in flight until endEvict.
func (pt *pieceTable) beginEvict(i int, protected []bool) bool {
	if !pt.evictable(i, protected) {
		return false
	}
	pt.store.Unverify(i)
	pt.busy[i] = true
	if pt.wanted[i] {
		pt.wantedLeft++
	}
	pt.prio[i], pt.prioKey[i] = pt.basePrio(i), 0
	return true
}

// endEvict ends the eviction of piece i. When the storage could not evict it and verified it
// again instead (cache.Storage.EvictPieces), the piece counts as verified again.
func (pt *pieceTable) endEvict(i int) {
	pt.busy[i] = false
	pt.gen++
	if pt.verified(i) {
		if pt.wanted[i] {
			pt.wantedLeft--
		}
		pt.prio[i], pt.prioKey[i] = prioNone, 0
	}
}
