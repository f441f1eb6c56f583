package fetch

import (
	"crypto/sha1"
	"hash"
	"sort"
	"time"

	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/webseed"
)

// Piece picking and block requests.
//
// Inputs every decision here weighs: piece verified or being verified; piece priority class and
// key (now > readahead > normal > none, see priority.go); piece availability (rarest first, but
// random for the first few pieces so new peers have something to trade); the peer has the piece;
// the peer is choking us; the peer's pipeline depth (rate x round trip) and snubbed state;
// pieces already in progress (finish them before starting more); a piece that failed its hash
// once is re-fetched from one peer alone (to find the culprit); endgame (a background download
// with nothing new to start: duplicate outstanding blocks across peers and cancel the losers);
// blocks a read waits on, and readahead blocks when the window is all requested, get a second
// request only once the first is late (older than lateAfterLocked: a few measured block round
// trips; oldestReadLateAfter for the pieces of the oldest blocked read when that read starts a
// stream), so one slow peer cannot stall a read while a healthy swarm rarely receives a block
// twice. Re-check these when making changes.

// randomFirstPieces is how many pieces are picked at random before rarest-first starts.
const randomFirstPieces = 4

// maxDuplicates bounds how many peers are asked for the same block at once.
const maxDuplicates = 2

// Bounds of the delay after which a block a read needs is also asked of a second peer
// (lateAfterLocked); between them it is a few smoothed block round trips.
const (
	minLateAfter = 30 * time.Millisecond
	maxLateAfter = urgentPatience
	// oldestReadLateAfter bounds the delay for the pieces the oldest blocked read waits on when
	// that read starts a stream (the first byte of a fresh mount, a player's seek): its blocks
	// go to a second peer sooner. Inside a sequential stream a read that waits is normal (the
	// network is the bottleneck) and asking twice would only waste it.
	oldestReadLateAfter = 5 * time.Millisecond
)

// dupMode says which already-requested blocks requestBlocksLocked may ask for again.
type dupMode uint8

const (
	dupNone dupMode = iota // only blocks nobody was asked for
	dupLate                // also blocks whose oldest request is late (reads, readahead)
	dupAny                 // also every block fewer than maxDuplicates peers hold (endgame)
)

// pieceDownload is a piece whose blocks are being fetched into a buffer.
type pieceDownload struct {
	index     int
	nBlocks   int
	got       []bool
	reqs      []uint8 // outstanding requests per block
	since     []int64 // when the oldest outstanding request of each block was sent (unix ns)
	nGot      int     // blocks received (written, or being written)
	writing   int     // blocks being written to the cache file
	firstFree int     // no block before it is unrequested and missing
	contrib   []*peer
	exclusive *peer // after a hash failure with several senders, one peer fetches it alone
	// owner is the peer that started a background piece: the others leave its unrequested
	// blocks to it while it can fetch them (heldByOther), so that the piece comes in order
	// over one connection and is hashed in memory as it arrives, not read back.
	owner *peer
	// exclusiveWeb is exclusive for a web seed; webContrib are the web seeds that sent blocks.
	exclusiveWeb *webseed.Source
	webContrib   []*webseed.Source
	// The blocks [0, hashed) went into hash, a SHA-1, in order as they were written, so the
	// verifier reads back only the rest of the piece. hashing says that the goroutine writing
	// block hashed owns hash now (blockWrite.hash); nobody else touches it meanwhile.
	hash       hash.Hash
	hashed     int
	hashing    bool
	hashBroken bool   // reading a block back failed: the verifier hashes the piece afresh
	written    []bool // blocks written to the cache file
	queued     bool   // handed to the verifiers
}

type blockReq struct {
	piece  uint32
	begin  uint32
	length uint32
	sent   time.Time
}

func (t *Torrent) blockLen(piece, block int) int {
	size := int(t.info.PieceSize(piece))
	begin := block * p2p.BlockSize
	if begin+p2p.BlockSize > size {
		return size - begin
	}
	return p2p.BlockSize
}

func (t *Torrent) startDownloadLocked(i int, p *peer) *pieceDownload {
	size := int(t.info.PieceSize(i))
	nb := (size + p2p.BlockSize - 1) / p2p.BlockSize
	d := &pieceDownload{
		index: i, nBlocks: nb,
		got: make([]bool, nb), reqs: make([]uint8, nb), since: make([]int64, nb),
		hash: sha1.New(), written: make([]bool, nb),
	}
	if t.failedOnce(i) {
		d.exclusive = p
	}
	d.owner = p
	t.downloads[i] = d
	t.pt.startFetch(i)
	return d
}

// dropDownloadLocked forgets an in-progress piece that nobody is fetching any more.
func (t *Torrent) dropDownloadLocked(d *pieceDownload) {
	delete(t.downloads, d.index)
	t.pt.endFetch(d.index)
}

// fillRequestsLocked queues requests to p until its pipeline is full.
func (t *Torrent) fillRequestsLocked(p *peer) {
	if !p.amInterested || (p.peerChoking && len(p.fast.in) == 0) {
		return
	}
	depth := p.depth
	if p.snubbed {
		depth = 1
	}
	if !p.snubbed && len(t.pt.now) > 0 {
		t.preemptForReadLocked(p, depth)
	}
	need := min(depth-len(p.requests), t.c.inflightRoom())
	if need <= 0 {
		return
	}
	// 1. Unrequested (and late) blocks of pieces in progress, best piece first, except
	// background pieces another peer started and still fetches.
	need, held := t.requestFromDownloadsLocked(p, need, false, true)
	// 2. New pieces.
	newStarted := false
	for need > 0 {
		i := t.picker.pick(t.pt, p, p.snubbed, &p.noPickGen)
		if i < 0 {
			break
		}
		newStarted = true
		d := t.startDownloadLocked(i, p)
		need = t.requestBlocksLocked(p, d, need, dupNone, 0)
	}
	// 3. Nothing new to start: unrequested blocks of the other peers' background pieces,
	// then duplicates (endgame, and late blocks of what readers need).
	if need > 0 && held && !newStarted {
		need, _ = t.requestFromDownloadsLocked(p, need, false, false)
	}
	if need > 0 {
		t.requestFromDownloadsLocked(p, need, !newStarted, false)
	}
}

// preemptForReadLocked makes room in p's pipeline for the blocks a blocked read waits on:
// when the pipeline is too full to take the read's blocks that nobody was asked for yet (and p
// could send), the newest requests for pieces no read waits on (the last in the peer's queue:
// readahead, head and tail hints, background) are cancelled, so the read's blocks do not queue
// behind them. The cancelled blocks are asked for again later; one that still arrives is taken
// (forgetRequestLocked remembers it). A seek on a busy stream thus costs about one round trip,
// not a whole pipeline.
func (t *Torrent) preemptForReadLocked(p *peer, depth int) {
	room := depth - len(p.requests)
	if room >= depth {
		return // an empty pipeline has room for anything
	}
	// Count the read's blocks p could be asked for, up to depth (more cannot be asked): the
	// scan runs on every fill while a read waits, so it stays O(depth).
	want := 0
	for _, i := range t.pt.now {
		if want >= depth {
			break
		}
		if t.pt.verified(i) || !p.canRequest(i) {
			continue
		}
		d := t.downloads[i]
		switch {
		case d == nil:
			if t.pt.pickable(i) {
				want += (int(t.info.PieceSize(i)) + p2p.BlockSize - 1) / p2p.BlockSize
			}
		case !d.reservedForOther(p) && d.exclusiveWeb == nil:
			for b := d.firstFree; b < d.nBlocks && want < depth; b++ {
				if !d.got[b] && d.reqs[b] == 0 {
					want++
				}
			}
		}
	}
	excess := min(want, depth) - room
	if excess <= 0 {
		return
	}
	var victims []int
	for k, r := range p.requests {
		if t.pt.prio[r.piece] != prioNow {
			victims = append(victims, k)
		}
	}
	if len(victims) == 0 {
		return
	}
	sort.Slice(victims, func(a, b int) bool { return p.requests[victims[a]].sent.After(p.requests[victims[b]].sent) })
	victims = victims[:min(excess, len(victims))]
	sort.Sort(sort.Reverse(sort.IntSlice(victims))) // removeRequestAt moves the last request: go from the end
	for _, k := range victims {
		r := p.requests[k]
		p.removeRequestAt(k)
		t.forgetRequestLocked(p, r)
		p.out = append(p.out, p2p.Message{ID: p2p.MsgCancel, Index: r.piece, Begin: r.begin, Length: r.length})
	}
	t.preempted += len(victims)
}

// requestFromDownloadsLocked requests blocks of in-progress pieces from p: unrequested ones,
// late ones of pieces a read waits on, and with endgame (nothing new to start) late ones of
// readahead pieces and any of the background download's pieces. With leaveHeld it skips the
// background pieces another peer holds (heldByOther), and reports whether it skipped any;
// a background piece nobody holds that p takes blocks of becomes p's.
func (t *Torrent) requestFromDownloadsLocked(p *peer, need int, endgame, leaveHeld bool) (left int, skippedHeld bool) {
	ds := t.sortedDownloadsLocked()
	late := t.lateAfterLocked()
	for _, d := range ds {
		if need <= 0 {
			break
		}
		if !p.canRequest(d.index) || d.reservedForOther(p) || d.exclusiveWeb != nil {
			continue
		}
		if leaveHeld && t.heldByOther(d, p) {
			skippedHeld = true
			continue
		}
		if p.snubbed && t.pt.prio[d.index] == prioNow {
			continue // a blocked read does not wait on a peer that stopped sending
		}
		if !p.inTime(d.index, int64(need*p2p.BlockSize)) {
			continue // too slow for the reader: leave it to faster peers (deadline.go)
		}
		var mode dupMode
		lateAfter := late
		if t.pt.streamStart(d.index) {
			lateAfter = min(late, oldestReadLateAfter)
		}
		switch prio := t.pt.prio[d.index]; {
		case prio == prioNow:
			mode = dupLate
		case !endgame || prio == prioNone:
			mode = dupNone
		case t.opts.Background && prio == prioNormal:
			mode = dupAny
		default: // readahead and head/tail pieces, the window all requested
			mode = dupLate
		}
		before := need
		need = t.requestBlocksLocked(p, d, need, mode, lateAfter)
		if leaveHeld && need < before && t.pt.prio[d.index] == prioNormal {
			d.owner = p // nobody else held it: p takes it over
		}
	}
	return need, skippedHeld
}

// reservedForOther reports whether d, retried after a hash failure with several senders, is
// fetched by another peer alone (exclusive). The reservation of a peer that has left passes
// to p (nil: to nobody, for a web seed to take), so that the rest of the piece is not left
// waiting for a peer that is gone.
func (d *pieceDownload) reservedForOther(p *peer) bool {
	switch {
	case d.exclusive == nil || d.exclusive == p:
		return false
	case d.exclusive.closed:
		d.exclusive = p
		return false
	}
	return true
}

// heldByOther reports whether d is a background piece that another peer started and can
// still fetch (connected, not choking us, not snubbed). A piece a reader needs is held by
// nobody: every peer helps to finish it. Called under Torrent.mu.
func (t *Torrent) heldByOther(d *pieceDownload, p *peer) bool {
	o := d.owner
	if o == nil || o == p || t.pt.prio[d.index] != prioNormal {
		return false
	}
	return !o.closed && !o.snubbed && o.canRequest(d.index)
}

// lateAfterLocked is how long a block request may be outstanding before a block a read needs
// is asked of a second peer: three smoothed block round trips (which include the time the
// request waits in the peer's queue), within [minLateAfter, maxLateAfter].
func (t *Torrent) lateAfterLocked() time.Duration {
	return min(max(minLateAfter, 3*t.blockRTT), maxLateAfter)
}

// wakeAtLocked makes every peer look for work again at unix time at (ns): then a request that
// is not late yet will be, and a second peer may be asked for its block.
func (t *Torrent) wakeAtLocked(at int64) {
	if t.lateWakeAt != 0 && t.lateWakeAt <= at {
		return
	}
	t.lateWakeAt = at
	d := time.Duration(at - time.Now().UnixNano())
	if t.lateWake == nil {
		t.lateWake = time.AfterFunc(d, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.lateWakeAt = 0
			if t.ctx.Err() == nil {
				t.wakeAllLocked()
			}
		})
		return
	}
	t.lateWake.Reset(d)
}

func (t *Torrent) sortedDownloadsLocked() []*pieceDownload {
	ds := t.dlScratch[:0]
	for _, d := range t.downloads {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(a, b int) bool {
		if t.pt.better(ds[a].index, ds[b].index) {
			return true
		}
		if t.pt.better(ds[b].index, ds[a].index) {
			return false
		}
		return ds[a].index < ds[b].index
	})
	t.dlScratch = ds
	return ds
}

// requestBlocksLocked requests up to need blocks of d from p and returns what is still needed.
// With dupNone only unrequested blocks are asked for; otherwise also blocks that fewer than
// maxDuplicates other peers were asked for: at once with dupAny, with dupLate once the oldest
// request is older than lateAfter.
func (t *Torrent) requestBlocksLocked(p *peer, d *pieceDownload, need int, mode dupMode, lateAfter time.Duration) int {
	start := 0
	if mode == dupNone {
		start = d.firstFree
	}
	now := time.Now()
	nowNs := now.UnixNano()
	for b := start; b < d.nBlocks && need > 0; b++ {
		if mode == dupNone {
			// Every block before b+1 is now got or requested.
			d.firstFree = b + 1
		}
		if d.got[b] {
			continue
		}
		if d.reqs[b] > 0 {
			if mode == dupNone || int(d.reqs[b]) >= maxDuplicates {
				continue
			}
			if due := d.since[b] + int64(lateAfter); mode == dupLate && nowNs < due {
				t.wakeAtLocked(due)
				continue
			}
			if p.hasRequest(d.index, b) {
				continue
			}
		}
		length := t.blockLen(d.index, b)
		r := blockReq{piece: uint32(d.index), begin: uint32(b * p2p.BlockSize), length: uint32(length), sent: now}
		p.addRequest(r)
		if d.reqs[b] == 0 {
			d.since[b] = nowNs
		}
		d.reqs[b]++
		p.out = append(p.out, p2p.Message{ID: p2p.MsgRequest, Index: r.piece, Begin: r.begin, Length: r.length})
		need--
	}
	return need
}

// pickWindow is how many background candidates a pick compares: rarest-first among a window
// that starts where the last pick ended, so a pick costs O(window), not O(pieces).
const pickWindow = 64

// pickPeer is what the picker needs to know of a peer.
type pickPeer interface {
	// canRequest reports whether the peer has piece i and may be asked for it now.
	canRequest(i int) bool
	// inTime reports whether the peer should take piece i, of size bytes, as far as its
	// reader's deadline goes (deadline.go).
	inTime(i int, size int64) bool
}

// picker chooses the next piece to start for a peer, over a torrent's piece table. It needs
// no socket: its tests give it a table and peers that are plain bitfields.
type picker struct {
	lastPick int // where the next background scan starts
	// randIntN returns a random number in [0, n) (math/rand/v2's IntN; tests fix it).
	randIntN func(n int) int
}

// pick chooses the best piece p has that nobody is fetching yet, or -1: first what readers
// claim (blocked reads, then readahead, in order), then a background piece, rarest first
// (random for the first few pieces) within a window of candidates. A snubbed peer is given no
// piece a read waits on. skipGen is the peer's memory of a fruitless scan: when it equals the
// table's generation nothing changed since and the scan is skipped; a fruitless scan sets it.
func (pk *picker) pick(pt *pieceTable, p pickPeer, snubbed bool, skipGen *uint64) int {
	ok := func(i int) bool {
		return pt.pickable(i) && p.canRequest(i) && !(snubbed && pt.prio[i] == prioNow)
	}
	inTime := func(i int) bool { return p.inTime(i, pt.store.Info().PieceSize(i)) }
	best := -1
	for _, i := range pt.urgent {
		if ok(i) && (best < 0 || pt.better(i, best)) && inTime(i) {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	if !pt.backgroundWork() {
		return -1 // no piece is wanted in the background (a mount without --prefetch): no scan
	}
	if *skipGen == pt.gen {
		return -1 // the last scan found nothing, and nothing changed since
	}
	random := pt.store.VerifiedCount() < randomFirstPieces
	ties, seen := 0, 0
	n := pt.len()
	for k := 0; k < n && seen < pickWindow; k++ {
		i := (pk.lastPick + k) % n
		if pt.prio[i] != prioNormal || !ok(i) {
			continue
		}
		seen++
		switch {
		case best < 0 || pt.avail[i] < pt.avail[best]:
			best, ties = i, 1
		case pt.avail[i] == pt.avail[best]:
			// Equal candidates: reservoir sampling, so every one is as likely.
			ties++
			if pk.randIntN(ties) == 0 {
				best = i
			}
		case random:
			if pk.randIntN(seen) == 0 {
				best = i
			}
		}
	}
	if best >= 0 {
		pk.lastPick = best
	} else {
		*skipGen = pt.gen
	}
	return best
}

// releaseChokedRequestsLocked forgets the requests a choke cancels: all of them, except (with
// the fast extension) those of pieces the peer lets us have fast, which it still serves or
// rejects.
func (t *Torrent) releaseChokedRequestsLocked(p *peer) {
	if !p.fast.enabled {
		t.releaseRequestsLocked(p)
		p.lateBlocks = 0 // the peer drops its queue when it chokes, and sent nothing since
		return
	}
	kept := p.requests[:0]
	for _, r := range p.requests {
		if p.fast.in[r.piece] {
			kept = append(kept, r)
			continue
		}
		t.forgetRequestLocked(p, r)
	}
	t.c.inflight.Add(-int64(len(p.requests) - len(kept)))
	p.requests = kept
}

// releaseRequestsLocked forgets every request outstanding at p (choke, snub, disconnect).
func (t *Torrent) releaseRequestsLocked(p *peer) {
	for _, r := range p.requests {
		t.forgetRequestLocked(p, r)
	}
	t.c.inflight.Add(-int64(len(p.requests)))
	p.requests = p.requests[:0]
}

// forgetRequestLocked makes the block of r, already removed from p.requests, free to request
// again; a late answer to it is still accepted.
func (t *Torrent) forgetRequestLocked(p *peer, r blockReq) {
	p.requestWithdrawn()
	t.freeBlockLocked(r)
}

// freeBlockLocked makes the block of r, a request no peer holds any more (p.requests has
// lost it), free to request again; a download nothing was received for nor asked of is
// dropped.
func (t *Torrent) freeBlockLocked(r blockReq) {
	d := t.downloads[int(r.piece)]
	if d == nil {
		return
	}
	b := int(r.begin) / p2p.BlockSize
	if d.reqs[b] > 0 {
		d.reqs[b]--
	}
	if b < d.firstFree && !d.got[b] {
		d.firstFree = b
	}
	if d.nGot == 0 && allZero(d.reqs) {
		t.dropDownloadLocked(d)
	}
}

func allZero(v []uint8) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}
