package fetch

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestIncrementalPrioritiesMatchFull is a property test of the priority bookkeeping: after
// every step of a random sequence of reader events (open, close, reads that move a window,
// blocked reads that start and end), evictions and background switches, the priorities kept
// incrementally (recomputePriorityLocked resets only the pieces raised last time) equal the
// ones derived from scratch (recomputeAllPrioritiesLocked).
func TestIncrementalPrioritiesMatchFull(t *testing.T) {
	const pieces = 300
	for seed := range uint64(20) {
		tor, _ := benchTorrent(t, pieces, seed%2 == 0)
		rng := rand.New(rand.NewPCG(seed, 7))
		var readers []*Reader
		size := tor.info.Length
		for step := range 200 {
			switch op := rng.IntN(10); {
			case op == 0 || len(readers) == 0:
				r, err := tor.NewReader(0, ReaderOptions{MaxReadahead: int64(1+rng.IntN(64)) << 14, HeadTail: int64(rng.IntN(3)) << 15})
				if err != nil {
					t.Fatal(err)
				}
				readers = append(readers, r)
			case op == 1:
				k := rng.IntN(len(readers))
				readers[k].Close()
				readers = slices.Delete(readers, k, k+1)
			case op == 2:
				tor.SetBackground(rng.IntN(2) == 0)
			case op == 3:
				// A piece verified and then evicted again: its base comes back.
				i := rng.IntN(pieces)
				tor.mu.Lock()
				tor.store.Unverify(i)
				tor.pt.prio[i], tor.pt.prioKey[i] = tor.pt.basePrio(i), 0
				tor.recomputePriorityLocked()
				tor.mu.Unlock()
			default:
				r := readers[rng.IntN(len(readers))]
				off := rng.Int64N(size)
				tor.mu.Lock()
				if rng.IntN(3) == 0 {
					// A read blocks on its piece, or one that blocked ends.
					i := int(off / tor.info.PieceLength)
					if r.waitCount[i] > 0 {
						delete(r.waits, i)
						delete(r.waitCount, i)
					} else {
						r.waits[i] = time.Unix(0, int64(step+1))
						r.waitCount[i] = 1
					}
				}
				r.ra.advance(off, int64(1+rng.IntN(1<<16)))
				tor.recomputePriorityLocked()
				tor.mu.Unlock()
			}
			tor.mu.Lock()
			prio, keys := slices.Clone(tor.pt.prio), slices.Clone(tor.pt.prioKey)
			tor.recomputeAllPrioritiesLocked()
			bad := -1
			for i := range prio {
				if prio[i] != tor.pt.prio[i] || keys[i] != tor.pt.prioKey[i] {
					bad = i
					break
				}
			}
			var derived prioCls
			var derivedKey int64
			if bad >= 0 {
				derived, derivedKey = tor.pt.prio[bad], tor.pt.prioKey[bad]
			}
			tor.mu.Unlock() // before any Fatal: the cleanups close the torrent
			if bad >= 0 {
				t.Fatalf("seed %d step %d: piece %d kept as class %d key %d, derived class %d key %d",
					seed, step, bad, prio[bad], keys[bad], derived, derivedKey)
			}
		}
		for _, r := range readers {
			r.Close()
		}
	}
}
