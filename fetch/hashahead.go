package fetch

import (
	"github.com/gotfs/gotfs/p2p"
)

// Hashing ahead. A piece's SHA-1 is fed in block order while its blocks arrive, so that when its
// last block is written little or nothing is left to hash: the read waiting for the piece is
// released sooner, and the bytes are hashed while they are in memory or just written (in the
// page cache) instead of all at the end. The block that comes next in order is hashed from
// memory by the goroutine that writes it (blockWrite.hash); blocks that arrived ahead of their
// turn are read back and hashed by whichever goroutine finishes the one before them
// (hashAhead). One goroutine at a time owns a download's hash (pieceDownload.hashing, taken and
// given back under Torrent.mu), so it needs no lock of its own. Only bytes written to the cache
// file go into the hash, so what the verifier accepts is what is on disk
// (cache.Storage.VerifyPieceFrom); a block that fails to be read back stops the hashing ahead
// and the verifier hashes the piece afresh.

// maxBlockBatch is the most blocks a peer's reader takes from one read of its connection
// (the 128 KiB read buffer holds about eight).
const maxBlockBatch = 16

// hashAheadRead is the most bytes hashAhead reads back at once (Client.hashAheadBufs).
const hashAheadRead = 128 << 10

// storeBlocks writes received blocks (acceptBlockLocked: those a peer's reader took from one
// read, or a web seed's runs) to the cache file, outside the lock: each run of consecutive
// blocks of one piece in one write (Storage.WriteBlocks). A block is hashed on the way when it
// is the next in order, blocks after it that came early are hashed ahead, and a piece goes to
// the verifiers when its last block is written.
func (t *Torrent) storeBlocks(batch []blockWrite) {
	for len(batch) > 0 {
		n := 1
		for n < len(batch) && batch[n].d == batch[0].d && batch[n].begin == batch[n-1].begin+len(batch[n-1].data) {
			n++
		}
		t.storeRun(batch[:n])
		batch = batch[n:]
	}
}

// storeRun writes consecutive blocks of one piece and records them (see storeBlocks).
// When the first is the next block in order to hash, its writer owns the piece's hash
// (blockWriteLocked), so the run's later blocks are hashed in memory behind it too.
func (t *Torrent) storeRun(run []blockWrite) {
	d := run[0].d
	var bufs [maxBlockBatch][]byte
	iov := bufs[:0]
	for _, w := range run {
		iov = append(iov, w.data)
	}
	werr := t.store.WriteBlocks(run[0].piece, run[0].begin, iov)
	if run[0].hash {
		for k := range run {
			run[k].hash = true
			if werr == nil {
				d.hash.Write(run[k].data) // the next blocks in order: hashed while in memory
			}
		}
	}
	t.mu.Lock()
	var job *verifyJob
	for _, w := range run {
		if j := t.blockWrittenLocked(w, werr); j != nil {
			job = j
		}
	}
	ahead := job == nil && d.claimHash()
	t.mu.Unlock()
	if ahead {
		job = t.hashAhead(d)
	}
	if job != nil {
		select {
		case t.verifyq <- *job:
		case <-t.ctx.Done():
		}
	}
}

// blockWrittenLocked records the end of a write of one block, or of a run of consecutive
// blocks of one piece (a web seed's). It returns the piece to verify when the write was its
// last one. A failed write (a full disk) makes the blocks missing again and fails the reads
// waiting for the piece, as a piece that cannot be stored does.
func (t *Torrent) blockWrittenLocked(w blockWrite, werr error) *verifyJob {
	d := w.d
	first := w.begin / p2p.BlockSize
	n := (len(w.data) + p2p.BlockSize - 1) / p2p.BlockSize
	d.writing -= n
	if w.hash {
		d.hashing = false
		if werr == nil {
			d.hashed += n
		}
	}
	if werr != nil {
		for b := first; b < first+n; b++ {
			d.got[b] = false
		}
		d.nGot -= n
		d.firstFree = min(d.firstFree, first)
		t.stats.Wasted += int64(len(w.data))
		t.storeFailedLocked(w.piece, werr)
		if d.nGot == 0 && d.writing == 0 && allZero(d.reqs) {
			t.dropDownloadLocked(d)
		}
		return nil
	}
	for b := first; b < first+n; b++ {
		d.written[b] = true
	}
	return t.completeLocked(d)
}

// completeLocked hands d to the verifiers once every block is written and nobody is hashing
// it, once.
func (t *Torrent) completeLocked(d *pieceDownload) *verifyJob {
	if d.nGot < d.nBlocks || d.writing > 0 || d.hashing || d.queued {
		return nil
	}
	d.queued = true
	delete(t.downloads, d.index)
	// The piece stays in flight in the piece table: it is now being verified.
	job := &verifyJob{index: d.index, contrib: d.contrib, webContrib: d.webContrib, hash: d.hash, hashed: t.hashedBytes(d)}
	if d.hashBroken {
		job.hash, job.hashed = nil, 0
	}
	return job
}

// claimHash takes d's hash for the caller when the next block in order is written and nobody
// else hashes it; the caller then runs hashAhead. Called under Torrent.mu.
func (d *pieceDownload) claimHash() bool {
	if d.hashing || d.hashBroken || d.queued || d.hashed >= d.nBlocks || !d.written[d.hashed] {
		return false
	}
	d.hashing = true
	return true
}

// hashAhead feeds d's written blocks, in order from the next one, into its hash, reading them
// back from the cache file, until it meets a block not written yet: each run of consecutive
// written blocks (up to hashAheadRead bytes) in one read and one lock round. The caller owns the
// hash (claimHash). It returns the piece to verify when the piece became complete meanwhile.
func (t *Torrent) hashAhead(d *pieceDownload) *verifyJob {
	bufp := t.c.hashAheadBufs.Get().(*[]byte)
	defer t.c.hashAheadBufs.Put(bufp)
	t.mu.Lock()
	n := d.writtenRun(hashAheadRead / p2p.BlockSize)
	t.mu.Unlock()
	for {
		b := d.hashed // the owner of the hash alone changes it
		from := int64(b) * p2p.BlockSize
		to := min(from+int64(n)*p2p.BlockSize, t.info.PieceSize(d.index))
		err := t.store.HashPieceRange(d.index, d.hash, from, to, *bufp)
		t.mu.Lock()
		d.hashing = false
		if err != nil {
			d.hashBroken = true
			t.log.Debug("hash ahead", "piece", d.index, "err", err)
		} else {
			d.hashed += n
		}
		again := d.claimHash()
		var job *verifyJob
		if again {
			n = d.writtenRun(hashAheadRead / p2p.BlockSize)
		} else {
			job = t.completeLocked(d)
		}
		t.mu.Unlock()
		if !again {
			return job
		}
	}
}

// writtenRun is how many blocks from the next one to hash on are written, up to max. Called
// under Torrent.mu.
func (d *pieceDownload) writtenRun(max int) int {
	n := 0
	for b := d.hashed; b < d.nBlocks && n < max && d.written[b]; b++ {
		n++
	}
	return n
}

// hashedBytes is how many bytes of d's piece its hash holds.
func (t *Torrent) hashedBytes(d *pieceDownload) int64 {
	if d.hashed >= d.nBlocks {
		return t.info.PieceSize(d.index)
	}
	return int64(d.hashed) * p2p.BlockSize
}
