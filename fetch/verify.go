package fetch

import (
	"crypto/sha1"
	"hash"
	"runtime"
	"time"

	"github.com/gotfs/gotfs/webseed"
)

// strikesToBan is how many bad pieces a peer may send alone before it is banned.
const strikesToBan = 2

// verifyJob is a piece whose every block is in the cache file, waiting for its SHA-1 check.
type verifyJob struct {
	index   int
	contrib []*peer
	// webContrib are the web seeds that sent blocks of the piece.
	webContrib []*webseed.Source
	hash       hash.Hash // a SHA-1 of the piece's first hashed bytes (blocks hashed as written)
	hashed     int64
}

// verifyChunk is each verifier's scratch buffer: pieces are hashed from the cache file (mostly
// the page cache) through it, so a verifier costs this much memory whatever the piece size.
const verifyChunk = 256 << 10

// startWorkers starts the torrent's verifier pool, its ticker and its announcer.
func (t *Torrent) startWorkers() {
	for range runtime.GOMAXPROCS(0) {
		t.wg.Add(1)
		go t.verifyLoop()
	}
	t.wg.Add(1)
	go t.tickLoop()
	if !t.opts.NoTrackers && len(t.mi.Trackers) > 0 {
		t.wg.Add(1)
		go t.announceLoop()
	}
	if t.c.dht != nil && !t.info.Private {
		t.wg.Add(1)
		go t.dhtLoop()
	}
	t.startWebSeeds()
}

// verifyLoop checks pieces off the network goroutines and stores the good ones.
func (t *Torrent) verifyLoop() {
	defer t.wg.Done()
	scratch := make([]byte, verifyChunk)
	for {
		select {
		case <-t.ctx.Done():
			return
		case job := <-t.verifyq:
			t.verify(job, scratch)
		}
	}
}

// verify hashes a piece from the cache file; the storage marks it verified when it matches.
func (t *Torrent) verify(job verifyJob, scratch []byte) {
	h := job.hash
	if h == nil {
		h = sha1.New()
	}
	ok, rerr := t.store.VerifyPieceFrom(job.index, h, job.hashed, scratch)
	size := t.info.PieceSize(job.index)
	t.mu.Lock()
	t.hashedAhead += job.hashed
	defer func() {
		t.mu.Unlock()
		if ok {
			t.c.verifiedBytes.Add(size)
			t.c.enforceCacheLimit()
		}
	}()
	switch {
	case rerr != nil:
		t.pt.endFetch(job.index)
		// The blocks were written but cannot be read back: fetch again later, say why now.
		t.stats.Wasted += size
		t.storeFailedLocked(job.index, rerr)
	case !ok:
		t.pt.endFetch(job.index)
		t.pieceFailedLocked(job)
	default:
		t.stats.Downloaded += size
		t.stats.PiecesFetched++
		if t.stats.PiecesFetched == 1 {
			t.log.Info("first piece verified", "piece", job.index, "peers", len(t.peers))
		}
		t.pieceVerifiedLocked(job.index)
	}
}

// pieceVerifiedLocked records a verified piece, releases its readers and tells the peers.
func (t *Torrent) pieceVerifiedLocked(i int) {
	// The storage set the piece's bit (VerifyPiece): this is the engine's bookkeeping.
	t.dirtyStore = true
	t.pt.markVerified(i, time.Now().UnixNano())
	t.checkCompleteLocked()
	if ch := t.waiters[i]; ch != nil {
		close(ch)
		delete(t.waiters, i)
	}
	delete(t.failed, i)
	n := t.info.NumPieces()
	seeding := t.store.VerifiedCount() == n
	for p := range t.peers {
		if seeding && p.hasCount == n {
			p.conn.Close() // two seeders have nothing to trade
			continue
		}
		t.tellHaveLocked(p, i)
		if seeding && p.toldCount < n {
			for j := range n { // the HAVEs tellHaveLocked held back
				t.tellHaveLocked(p, j)
			}
		}
	}
	if seeding {
		t.log.Info("all pieces verified")
		t.announceNow()
	}
}

// storeFailedLocked reports a piece that could not be stored (a full or failing disk): reads
// waiting for it fail now instead of waiting for a disk that is full.
func (t *Torrent) storeFailedLocked(i int, err error) {
	t.log.Error("store piece", "piece", i, "err", err)
	t.lastStoreErr = err
	if ch := t.waiters[i]; ch != nil {
		close(ch)
		delete(t.waiters, i)
	}
	t.wakeAllLocked()
}

// pieceFailedLocked drops a piece that failed verification and punishes its sender.
func (t *Torrent) pieceFailedLocked(job verifyJob) {
	t.stats.HashFailures++
	t.stats.Wasted += t.info.PieceSize(job.index)
	if t.failed == nil {
		t.failed = map[int]bool{}
	}
	t.failed[job.index] = true
	t.log.Warn("piece failed verification", "piece", job.index, "senders", len(job.contrib)+len(job.webContrib))
	if len(job.webContrib) == 1 && len(job.contrib) == 0 {
		// A web seed sent the whole piece: it backs off, and is dropped after repeated ones.
		if s := job.webContrib[0]; s.ReportBadPiece() {
			t.log.Warn("web seed dropped for bad data", "url", s.Name())
		}
	}
	if len(job.contrib) == 1 && len(job.webContrib) == 0 {
		p := job.contrib[0]
		ip := p.addr.Addr()
		t.strikes[ip]++
		if t.strikes[ip] >= strikesToBan && !t.banned[ip] {
			t.banned[ip] = true
			t.stats.Banned++
			t.log.Warn("peer banned for bad data", "peer", p.addr)
			for q := range t.peers {
				if q.addr.Addr() == ip {
					q.conn.Close()
				}
			}
		}
	}
	t.wakeAllLocked()
}

func (t *Torrent) failedOnce(i int) bool { return t.failed[i] }

// updateRatesLocked smooths each peer's rates and sizes its pipeline from rate x round trip.
func (t *Torrent) updateRatesLocked(elapsed time.Duration) {
	const alpha = 0.3
	var down, up float64
	now := time.Now()
	for p := range t.peers {
		sec := elapsed.Seconds()
		p.downRate = alpha*float64(p.recvBytes)/sec + (1-alpha)*p.downRate
		p.upRate = alpha*float64(p.sentBytes)/sec + (1-alpha)*p.upRate
		if p.recvBytes > 0 {
			// Idle ticks (nothing asked of the peer) do not lower it; the first is taken whole.
			since := now.Sub(p.rateSince).Seconds()
			if p.sendRate == 0 {
				p.sendRate = float64(p.recvBytes) / since
			} else {
				p.sendRate = alpha*float64(p.recvBytes)/sec + (1-alpha)*p.sendRate
			}
		}
		p.recvBytes, p.sentBytes = 0, 0
		p.rateSince = now
		down += p.downRate
		up += p.upRate
		// Enough requests to cover the round trip plus a second of data at the current rate.
		window := p.minRTT + time.Second
		depth := int(p.downRate*window.Seconds()) / blockSize
		p.depth = max(minDepth, min(depth, p.maxDepth))
	}
	t.stats.DownloadRate, t.stats.UploadRate = down, up
}
