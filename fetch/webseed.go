package fetch

import (
	"errors"
	"time"

	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/webseed"
)

// Web seeds: sources the picker serves like peers.
//
// A torrent's web seeds (BEP 19 url-list, BEP 17 httpseeds) are fetched by a small pool of
// workers per torrent (webWorkers). A worker takes work under Torrent.mu the way a peer's
// writer does: the best piece in progress that still has blocks nobody was asked for, else a
// new piece from the picker (a web seed has every piece), in the same priority order (blocked
// reads, readahead, background); then it asks one web seed for a run of up to webSpan bytes of
// consecutive blocks of that piece, outside the lock, and hands each block to the same path
// peers' blocks take (acceptBlockLocked, storeBlocks): written at its offset, hashed ahead,
// verified. A piece may be split between web seeds and peers at block granularity, and a
// block a web seed brings cancels the requests peers hold for it. Inputs weighed: each
// source's readiness (not dropped, not backing off, fewer than its fetches in flight),
// measured rate (the fastest ready source first, untried ones before any), the client-wide
// in-flight budget (a run's blocks count in it while they are asked for), a piece retried
// after a hash failure with several senders (fetched by one source alone), and bad pieces (a
// web seed that alone sent a piece that failed is reported: it backs off, and is dropped after
// repeated bad pieces). Re-check these when making changes.

const (
	// webSpan bounds the bytes one web request asks for: a run of blocks of one piece. The
	// buffer it needs comes from the in-flight budget while the request runs.
	webSpan = 1 << 20
	// webWorkers bounds the requests in flight to all the web seeds of one torrent.
	webWorkers = 8
	// webIdle is how long a worker with nothing to do waits before it looks again (work that
	// appears wakes it sooner).
	webIdle = 250 * time.Millisecond
)

// webJob is a run of blocks [first, first+n) of one piece asked of one web seed.
type webJob struct {
	src      *webseed.Source
	d        *pieceDownload
	first, n int
	bytes    int
}

// everyPiece is the picker's view of a web seed: it has every piece.
type everyPiece struct{}

func (everyPiece) canRequest(int) bool { return true }

// inTime: a web seed's blocks are fetched whole by its workers, which have no deadline here.
func (everyPiece) inTime(int, int64) bool { return true }

// startWebSeeds makes the torrent's web seed sources and starts its workers.
func (t *Torrent) startWebSeeds() {
	if t.c.web == nil || len(t.mi.WebSeeds)+len(t.mi.HTTPSeeds) == 0 {
		return
	}
	srcs, errs := t.c.web.Sources(webseed.NewLayout(t.info, t.hash), t.mi.WebSeeds, t.mi.HTTPSeeds)
	for _, err := range errs {
		t.log.Warn("web seed left out", "err", err)
	}
	if len(srcs) == 0 {
		return
	}
	t.webSeeds = srcs
	t.webWake = make(chan struct{})
	for range min(webWorkers, len(srcs)*webseed.DefaultMaxConnsPerHost) {
		t.wg.Add(1)
		go t.webWorker()
	}
	t.log.Debug("web seeds", "count", len(srcs))
}

// wakeWebLocked wakes the idle web seed workers: there may be work.
func (t *Torrent) wakeWebLocked() {
	if t.webWake != nil {
		close(t.webWake)
		t.webWake = make(chan struct{})
	}
}

// webWorker fetches runs of blocks from the web seeds until the torrent closes.
func (t *Torrent) webWorker() {
	defer t.wg.Done()
	buf := make([]byte, 0, webSpan)
	for {
		t.mu.Lock()
		job, ok := t.takeWebJobLocked(time.Now())
		wake := t.webWake
		t.mu.Unlock()
		if !ok {
			buf = buf[:0:0] // an idle worker holds no buffer
			select {
			case <-wake:
			case <-time.After(webIdle):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		if cap(buf) == 0 {
			buf = make([]byte, 0, webSpan)
		}
		data := buf[:job.bytes]
		err := job.src.Fetch(t.ctx, job.d.index, int64(job.first*p2p.BlockSize), data)
		if err != nil {
			t.webFailed(job, err)
			continue
		}
		t.webDeliver(job, data)
	}
}

// takeWebJobLocked chooses a web seed and a run of blocks for it, and marks the blocks
// requested; ok is false when there is no ready source or nothing to fetch.
func (t *Torrent) takeWebJobLocked(now time.Time) (job webJob, ok bool) {
	if t.ctx.Err() != nil {
		return job, false
	}
	src := t.bestWebSeed(now)
	if src == nil {
		return job, false
	}
	room := min(webSpan/p2p.BlockSize, t.c.inflightRoom())
	if room <= 0 {
		return job, false
	}
	for _, d := range t.sortedDownloadsLocked() {
		if d.exclusive != nil {
			if d.reservedForOther(nil) {
				continue // its peer fetches it alone
			}
			d.exclusiveWeb = src // its peer left: the web seed fetches the rest alone
		}
		if t.pt.prio[d.index] == prioNone || (d.exclusiveWeb != nil && d.exclusiveWeb != src) {
			continue
		}
		if job, ok = t.claimRunLocked(src, d, room, now); ok {
			return job, true
		}
	}
	i := t.picker.pick(t.pt, everyPiece{}, false, &t.webNoPickGen)
	if i < 0 {
		return job, false
	}
	d := t.startDownloadLocked(i, nil)
	if t.failedOnce(i) {
		d.exclusiveWeb = src // retried after a failure with several senders: one source alone
	}
	return t.claimRunLocked(src, d, room, now)
}

// bestWebSeed returns the ready web seed to ask next: one never measured first (so each gets
// tried), else the fastest; nil when none is ready.
func (t *Torrent) bestWebSeed(now time.Time) *webseed.Source {
	var best *webseed.Source
	bestRate := -1.0
	for _, s := range t.webSeeds {
		if !s.Ready(now) {
			continue
		}
		r := s.Rate()
		if r == 0 {
			return s
		}
		if r > bestRate {
			best, bestRate = s, r
		}
	}
	return best
}

// claimRunLocked marks the first run of at most max consecutive blocks of d that nobody was
// asked for as requested from src.
func (t *Torrent) claimRunLocked(src *webseed.Source, d *pieceDownload, max int, now time.Time) (webJob, bool) {
	b := d.firstFree
	for b < d.nBlocks && (d.got[b] || d.reqs[b] > 0) {
		b++
	}
	if b == d.nBlocks {
		d.firstFree = b
		return webJob{}, false
	}
	first, bytes := b, 0
	for ; b < d.nBlocks && b-first < max && !d.got[b] && d.reqs[b] == 0; b++ {
		d.reqs[b]++
		d.since[b] = now.UnixNano()
		bytes += t.blockLen(d.index, b)
	}
	if first == d.firstFree {
		d.firstFree = b
	}
	t.c.inflight.Add(int64(b - first))
	return webJob{src: src, d: d, first: first, n: b - first, bytes: bytes}, true
}

// releaseRunLocked gives back the requests of a run: its blocks may be asked of anyone again.
func (t *Torrent) releaseRunLocked(job webJob) {
	d := job.d
	for b := job.first; b < job.first+job.n; b++ {
		if d.reqs[b] > 0 {
			d.reqs[b]--
		}
		if !d.got[b] {
			d.firstFree = min(d.firstFree, b)
		}
	}
	t.c.inflight.Add(-int64(job.n))
	if t.downloads[d.index] == d && d.nGot == 0 && d.writing == 0 && allZero(d.reqs) {
		t.dropDownloadLocked(d)
	}
}

// webFailed gives back a failed run; the source recorded the failure and backs off.
func (t *Torrent) webFailed(job webJob, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.releaseRunLocked(job)
	t.wakeAllLocked() // the peers and the other web seeds may take the blocks
	if t.ctx.Err() == nil && !errors.Is(err, webseed.ErrNotReady) {
		t.log.Debug("web seed fetch failed", "url", job.src.Name(), "piece", job.d.index, "err", err)
	}
}

// webDeliver hands the blocks of a fetched run to the path peers' blocks take.
// The blocks still needed are taken in one hold of the lock, and each stretch of consecutive
// ones is written (and hashed, when it comes next in order) with one call.
func (t *Torrent) webDeliver(job webJob, data []byte) {
	d := job.d
	var writes []blockWrite
	t.mu.Lock()
	t.c.inflight.Add(-int64(job.n))
	start := -1 // first block of the stretch being gathered
	flush := func(end int) {
		if start >= 0 {
			from, to := (start-job.first)*p2p.BlockSize, min((end-job.first)*p2p.BlockSize, len(data))
			writes = append(writes, t.blockWriteLocked(d, start, data[from:to:to]))
			start = -1
		}
	}
	for b := job.first; b < job.first+job.n; b++ {
		if d.reqs[b] > 0 {
			d.reqs[b]--
		}
		if t.downloads[d.index] != d || d.got[b] {
			t.stats.Wasted += int64(t.blockLen(d.index, b)) // another source was faster, or the piece was dropped
			flush(b)
			continue
		}
		t.takeBlockLocked(d, b, t.blockLen(d.index, b), nil)
		if start < 0 {
			start = b
		}
	}
	flush(job.first + job.n)
	if len(writes) > 0 {
		addWebContributor(d, job.src)
	}
	t.mu.Unlock()
	t.storeBlocks(writes)
	t.mu.Lock()
	t.wakeAllLocked()
	t.mu.Unlock()
}

func addWebContributor(d *pieceDownload, s *webseed.Source) {
	for _, q := range d.webContrib {
		if q == s {
			return
		}
	}
	d.webContrib = append(d.webContrib, s)
}

// WebSeedStats is a snapshot of one web seed of a torrent.
type WebSeedStats = webseed.Stats

// WebSeeds returns a snapshot of each of the torrent's web seeds.
func (t *Torrent) WebSeeds() []WebSeedStats {
	out := make([]WebSeedStats, 0, len(t.webSeeds))
	for _, s := range t.webSeeds {
		out = append(out, s.Stats())
	}
	return out
}
