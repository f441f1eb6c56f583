package fetch

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

// The piece table, the picker, the readahead planner and the choker are plain types: these
// tests drive them directly, with a real storage (for the verified bits) and no client, peer
// or socket.

const tablePieceLen = 16 << 10

// tableFixture is a piece table over an empty storage of a small multi-file torrent (with a pad
// file), and a seeded copy of the same torrent to fetch "downloaded" pieces from.
type tableFixture struct {
	info *torrentfile.Info
	pt   *pieceTable
	seed *cache.Storage
	buf  []byte
}

func newTableFixture(t *testing.T, background bool) *tableFixture {
	t.Helper()
	src := t.TempDir()
	files := []testswarm.File{
		{Path: []string{"a"}, Size: 7*tablePieceLen + 100},
		{Path: []string{".pad", "1"}, Size: tablePieceLen - 100, Pad: true},
		{Path: []string{"b"}, Size: 20 * tablePieceLen},
		{Path: []string{"c"}, Size: 12*tablePieceLen + 5},
	}
	mi := testswarm.MakeTorrent(t, src, "table", files, tablePieceLen, 3)
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: filepath.Join(t.TempDir(), "data"), RecordPath: filepath.Join(t.TempDir(), "rec"), InfoHash: mi.InfoHash})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pt := newPieceTable(st, background)
	pt.setWanted(&mi.Info, nil)
	pt.setClaims(nil, true)
	return &tableFixture{info: &mi.Info, pt: pt, seed: testswarm.OpenSeed(t, mi, src), buf: make([]byte, 4096)}
}

// download writes piece i's true bytes block by block and verifies it, as the engine does with
// blocks from peers; corrupt flips a byte first, so the hash fails.
func (f *tableFixture) download(t *testing.T, i int, corrupt bool) bool {
	t.Helper()
	data, err := f.seed.ReadPiece(i, nil)
	if err != nil {
		t.Fatal(err)
	}
	if corrupt {
		data[len(data)/2] ^= 0xff
	}
	for b := 0; b < len(data); b += p2p.BlockSize {
		if err := f.pt.store.WriteBlock(i, b, data[b:min(b+p2p.BlockSize, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	ok, err := f.pt.store.VerifyPiece(i, f.buf)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// randomClaims makes up to three readers' worth of claims at random.
func randomClaims(rng *rand.Rand, n int, step int) []claim {
	var cs []claim
	for range rng.IntN(4) {
		first := rng.IntN(n)
		switch rng.IntN(3) {
		case 0:
			cs = append(cs, claim{first: first, last: first + 1, cls: prioNow, key: int64(step*10 + rng.IntN(10) + 1), startsStream: rng.IntN(2) == 0})
		case 1:
			cs = append(cs, claim{first: first, last: min(n, first+1+rng.IntN(8)), cls: prioReadahead})
		default:
			cs = append(cs, claim{first: first, last: min(n, first+2), cls: prioReadahead, key: hintKeyBase})
		}
	}
	return cs
}

// TestPieceTableProperties runs random sequences of what the engine does to the piece table
// (downloads that verify or fail, evictions, pins and unpins, claims of readers, changes of the
// wanted set and the background wish, peers coming and going) and checks after every step
// that the invariants hold, that a pinned piece is never evicted, and that priorities kept
// incrementally equal the ones derived from scratch.
func TestPieceTableProperties(t *testing.T) {
	for seed := range uint64(12) {
		f := newTableFixture(t, seed%2 == 0)
		pt := f.pt
		n := pt.len()
		rng := rand.New(rand.NewPCG(seed, 11))
		type pinRange struct{ first, last int }
		var pins []pinRange
		var claims []claim
		inFlight := map[int]bool{}
		for step := range 400 {
			i := rng.IntN(n)
			switch op := rng.IntN(11); op {
			case 0, 1: // a download starts, if the picker could choose the piece
				if pt.pickable(i) {
					pt.startFetch(i)
					inFlight[i] = true
				}
			case 2: // a download ends: verified, or its hash fails
				for j := range inFlight {
					delete(inFlight, j)
					if f.download(t, j, rng.IntN(4) == 0) {
						pt.markVerified(j, int64(step))
					} else {
						pt.endFetch(j)
					}
					break
				}
			case 3: // a read or an upload pins pieces, verified or not
				last := min(n, i+1+rng.IntN(3))
				if rng.IntN(2) == 0 {
					pt.pin(i, last)
					pins = append(pins, pinRange{i, last})
				} else if pt.pinVerified(i, last) {
					pins = append(pins, pinRange{i, last})
				}
			case 4: // a pin is released
				if len(pins) > 0 {
					k := rng.IntN(len(pins))
					pt.unpin(pins[k].first, pins[k].last)
					pins = slices.Delete(pins, k, k+1)
				}
			case 5: // an eviction of a piece, which fails now and then
				protected := make([]bool, n)
				for _, c := range claims {
					for j := c.first; j < c.last; j++ {
						protected[j] = true
					}
				}
				wasPinned := pt.pinned(i)
				if !pt.beginEvict(i, protected) {
					break
				}
				if wasPinned || protected[i] {
					t.Fatalf("seed %d step %d: piece %d evicted while pinned or protected", seed, step, i)
				}
				if rng.IntN(3) == 0 {
					if ok, err := pt.store.VerifyPiece(i, f.buf); !ok || err != nil { // the storage restores it
						t.Fatalf("restore piece %d: %v %v", i, ok, err)
					}
				} else if err := pt.store.EvictPieces([]int{i}); err != nil {
					t.Fatal(err)
				}
				pt.endEvict(i)
				pt.setClaims(claims, false)
			case 6: // readers change
				claims = randomClaims(rng, n, step)
				pt.setClaims(claims, false)
			case 7: // the wanted set changes
				include := rng.IntN(4)
				pt.setWanted(f.info, func(fi int) bool { return fi != include })
				pt.setClaims(claims, true)
			case 8: // background on or off
				pt.setBackground(rng.IntN(2) == 0)
				pt.setClaims(claims, true)
			case 9: // a peer with some pieces arrives
				pt.peerHas(i, 1)
			case 10: // a peer leaves
				if pt.avail[i] > 0 {
					pt.peerHas(i, -1)
				}
			}
			if err := pt.checkInvariants(); err != nil {
				t.Fatalf("seed %d step %d (op on piece %d): %v", seed, step, i, err)
			}
			for _, p := range pins {
				for j := p.first; j < p.last; j++ {
					if !pt.pinned(j) {
						t.Fatalf("seed %d step %d: piece %d lost its pin", seed, step, j)
					}
				}
			}
			prio, keys := slices.Clone(pt.prio), slices.Clone(pt.prioKey)
			pt.setClaims(claims, true)
			if !slices.Equal(prio, pt.prio) || !slices.Equal(keys, pt.prioKey) {
				t.Fatalf("seed %d step %d: incremental priorities differ from derived ones", seed, step)
			}
		}
	}
}

// TestPieceTablePinBlocksEviction: a pinned verified piece cannot be evicted, whatever else
// holds, and becomes evictable once the last pin goes.
func TestPieceTablePinBlocksEviction(t *testing.T) {
	f := newTableFixture(t, true)
	pt := f.pt
	if !f.download(t, 3, false) {
		t.Fatal("piece 3 did not verify")
	}
	pt.markVerified(3, 1)
	if pt.pinVerified(2, 4) {
		t.Fatal("pinVerified pinned a range with an unverified piece")
	}
	if !pt.pinVerified(3, 4) {
		t.Fatal("pinVerified refused a verified piece")
	}
	pt.pin(3, 4)
	for range 2 {
		if pt.beginEvict(3, nil) {
			t.Fatal("a pinned piece was evicted")
		}
		pt.unpin(3, 4)
	}
	if pt.pinned(3) {
		t.Fatal("piece 3 still pinned after every unpin")
	}
	protected := make([]bool, pt.len())
	protected[3] = true
	if pt.beginEvict(3, protected) {
		t.Fatal("a protected piece was evicted")
	}
	if !pt.beginEvict(3, nil) {
		t.Fatal("an unpinned verified piece could not be evicted")
	}
	if pt.verified(3) || !pt.busy[3] || pt.pickable(3) {
		t.Fatal("a piece being evicted must read as missing and not pickable")
	}
	if err := pt.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

// bitfieldPeer is a peer for the picker: the pieces it has.
type bitfieldPeer map[int]bool

func (b bitfieldPeer) canRequest(i int) bool { return b[i] }

func (b bitfieldPeer) inTime(int, int64) bool { return true }

func holdsAll(n int) bitfieldPeer {
	b := bitfieldPeer{}
	for i := range n {
		b[i] = true
	}
	return b
}

// TestPickerOrder: blocked reads first (oldest first), then readahead (nearest first), then
// background pieces rarest first; a snubbed peer gets no piece a read waits on; pieces in
// flight or verified are never picked; pieces the peer lacks are skipped.
func TestPickerOrder(t *testing.T) {
	f := newTableFixture(t, true)
	pt := f.pt
	n := pt.len()
	// Never replace the first of equal candidates (nor the best, in the random first picks).
	pk := picker{randIntN: func(n int) int { return n - 1 }}
	everyone := holdsAll(n)
	var skip uint64
	for i := range n {
		pt.peerHas(i, 3)
	}
	pt.peerHas(30, -2) // the rarest piece
	pt.setClaims([]claim{
		{first: 10, last: 14, cls: prioReadahead},
		{first: 20, last: 21, cls: prioNow, key: 200},
		{first: 5, last: 6, cls: prioNow, key: 100},
	}, false)
	want := []int{5, 20, 10, 11, 12, 13, 30}
	for _, w := range want {
		if w == 20 {
			if got := pk.pick(pt, everyone, true, &skip); got == 20 {
				t.Fatal("a snubbed peer was given a piece a read waits on")
			}
		}
		got := pk.pick(pt, everyone, false, &skip)
		if got != w {
			t.Fatalf("picked %d, want %d", got, w)
		}
		pt.startFetch(got)
	}
	// A peer without the rarest background pieces gets another background piece.
	lacks := holdsAll(n)
	delete(lacks, 31)
	if got := pk.pick(pt, lacks, false, &skip); got < 0 || got == 31 || pt.busy[got] {
		t.Fatalf("picked %d for a peer that lacks piece 31", got)
	}
}

// TestPickerSkipsFruitlessScans: once a background scan for a peer finds nothing, the next one
// is skipped until the table changes; then it finds the piece.
func TestPickerSkipsFruitlessScans(t *testing.T) {
	f := newTableFixture(t, true)
	pt := f.pt
	n := pt.len()
	pk := picker{randIntN: func(int) int { return 0 }}
	for i := range n {
		pt.startFetch(i)
	}
	var skip uint64
	if got := pk.pick(pt, holdsAll(n), false, &skip); got != -1 {
		t.Fatalf("picked %d with every piece in flight", got)
	}
	if skip != pt.gen {
		t.Fatal("a fruitless scan was not remembered")
	}
	pt.busy[7] = false // not through endFetch: the table did not change
	if got := pk.pick(pt, holdsAll(n), false, &skip); got != -1 {
		t.Fatal("the scan ran again although nothing changed")
	}
	pt.busy[7] = true
	pt.endFetch(7)
	if got := pk.pick(pt, holdsAll(n), false, &skip); got != 7 {
		t.Fatalf("picked %d after piece 7 became free, want 7", got)
	}
	// Without background work the picker never scans.
	pt.setBackground(false)
	pt.setClaims(nil, true)
	pt.endFetch(8)
	if got := pk.pick(pt, holdsAll(n), false, &skip); got != -1 {
		t.Fatalf("picked %d with nothing wanted", got)
	}
}

// TestPickerRandomFirst: before randomFirstPieces pieces are verified, background pieces of
// equal and of different rarity are chosen at random among the window.
func TestPickerRandomFirst(t *testing.T) {
	f := newTableFixture(t, true)
	pt := f.pt
	n := pt.len()
	for i := range n {
		pt.peerHas(i, 1+i%3)
	}
	seen := map[int]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		pk := picker{randIntN: rng.IntN}
		var skip uint64
		seen[pk.pick(pt, holdsAll(n), false, &skip)] = true
	}
	if len(seen) < 8 {
		t.Fatalf("the first picks chose only %d different pieces", len(seen))
	}
}

// TestReadaheadPlanner: sequential reads double the window up to its bound, a seek starts it
// again from the smallest size, the window stops at the end of the file, and nothing is
// planned without readahead.
func TestReadaheadPlanner(t *testing.T) {
	const pl = 256 << 10
	info := &torrentfile.Info{PieceLength: pl, Length: 64 << 20}
	info.Pieces = make([]torrentfile.Hash, info.Length/pl)
	ra := readahead{info: info, base: 1 << 20, size: 32 << 20, max: 8 << 20}
	const rd = 128 << 10
	if !ra.advance(0, rd) || ra.window != minReadahead || !ra.startsStream() {
		t.Fatalf("first read: window %d", ra.window)
	}
	if ra.first != (1<<20+rd)/pl || ra.last != (1<<20+rd+minReadahead+pl-1)/pl {
		t.Fatalf("first window covers pieces [%d, %d)", ra.first, ra.last)
	}
	var windows []int64
	for off := int64(rd); off < 8*rd; off += rd {
		ra.advance(off, rd)
		windows = append(windows, ra.window)
	}
	if !slices.Equal(windows, []int64{2 << 20, 4 << 20, 8 << 20, 8 << 20, 8 << 20, 8 << 20, 8 << 20}) {
		t.Fatalf("sequential windows %v", windows)
	}
	if ra.startsStream() {
		t.Fatal("a sequential read counts as the start of a stream")
	}
	ra.advance(20<<20, rd) // a seek
	if ra.window != minReadahead || !ra.startsStream() {
		t.Fatalf("after a seek: window %d", ra.window)
	}
	ra.advance(32<<20-rd, rd) // the last bytes of the file
	if ra.first != ra.last {
		t.Fatalf("a window past the end of the file covers pieces [%d, %d)", ra.first, ra.last)
	}
	none := readahead{info: info, size: 32 << 20}
	if none.advance(0, rd) || none.first != none.last {
		t.Fatal("a reader without readahead planned a window")
	}
}

// TestChooseUnchoked: the fastest interested peers get the regular slots; one other interested
// peer gets the optimistic unchoke, kept across rounds until it rotates, loses interest or
// earns a regular slot; uninterested peers stay choked.
func TestChooseUnchoked(t *testing.T) {
	first := func(int) int { return 0 }
	cands := []chokeCandidate{
		{interested: true, rate: 10},
		{interested: false, rate: 100},
		{interested: true, rate: 30},
		{interested: true, rate: 20},
		{interested: true, rate: 5},
		{interested: true, rate: 1},
	}
	unchoke, opt := chooseUnchoked(cands, 2, false, first)
	if !slices.Equal(unchoke, []bool{true, false, true, true, false, false}) || opt != 0 {
		t.Fatalf("unchoke %v, optimistic %d", unchoke, opt)
	}
	// The optimistic unchoke stays without rotation, and moves with it.
	cands[4].optimistic = true
	if unchoke, opt = chooseUnchoked(cands, 2, false, first); opt != 4 || !unchoke[4] {
		t.Fatalf("the optimistic unchoke moved without rotation: %d", opt)
	}
	last := func(n int) int { return n - 1 }
	if _, opt = chooseUnchoked(cands, 2, true, last); opt != 5 {
		t.Fatalf("rotation chose %d, want 5", opt)
	}
	// One that lost interest is replaced; one that earned a regular slot is too.
	cands[4] = chokeCandidate{interested: false, optimistic: true, rate: 5}
	if unchoke, opt = chooseUnchoked(cands, 2, false, first); unchoke[4] || opt == 4 {
		t.Fatal("an uninterested optimistic peer stayed unchoked")
	}
	cands[4] = chokeCandidate{interested: true, optimistic: true, rate: 50}
	if _, opt = chooseUnchoked(cands, 2, false, first); opt == 4 {
		t.Fatal("a peer in a regular slot is also the optimistic one")
	}
	if unchoke, opt = chooseUnchoked(nil, 4, true, first); len(unchoke) != 0 || opt != -1 {
		t.Fatal("no peers, yet something unchoked")
	}
}

// checkInvariants returns an error naming the first broken invariant, or nil. Tests call it;
// it is O(pieces).
func (pt *pieceTable) checkInvariants() error {
	left := 0
	claimed := make(map[int]bool, len(pt.urgent))
	for _, i := range pt.urgent {
		claimed[i] = true
	}
	for i := range pt.prio {
		v := pt.verified(i)
		if pt.wanted[i] && !v {
			left++
		}
		if v && pt.prio[i] != prioNone {
			return fmt.Errorf("piece %d is verified but has priority %d", i, pt.prio[i])
		}
		if base := pt.basePrio(i); pt.prio[i] != base && !claimed[i] {
			return fmt.Errorf("piece %d has priority %d above its base %d but is not listed as claimed", i, pt.prio[i], base)
		}
		if pt.avail[i] < 0 {
			return fmt.Errorf("piece %d has availability %d", i, pt.avail[i])
		}
	}
	if left != pt.wantedLeft {
		return fmt.Errorf("wantedLeft is %d, but %d wanted pieces are not verified", pt.wantedLeft, left)
	}
	for i, n := range pt.pins {
		if n <= 0 {
			return fmt.Errorf("piece %d has %d pins", i, n)
		}
	}
	return nil
}
