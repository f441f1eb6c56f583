package cache

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"
)

// resume rebuilds the verified set at Open: the record's pieces whose files are unchanged
// are trusted, and other pieces with bytes on disk are hashed.
func (s *Storage) resume() error {
	n := s.info.NumPieces()
	rec := s.loadRecord()
	staleStamps := false
	if rec != nil {
		bad := make([]bool, len(s.files))
		for i, f := range s.info.Files {
			if f.Padding || f.Length == 0 {
				continue
			}
			st := s.files[i].stamp
			if st != rec.Files[i] {
				bad[i] = true
				staleStamps = true
				s.log.Info("cache: file changed since the record was written; re-checking its pieces",
					"file", s.files[i].path, "size", st.Size, "recorded_size", rec.Files[i].Size)
			}
			if st.Size != f.Length {
				bad[i] = true // missing or the wrong size: none of its pieces can be trusted
			}
		}
		for i := 0; i < n; i++ {
			if !bitfieldHas(rec.Bitfield, i) {
				continue
			}
			s.recorded[i>>6] |= 1 << (uint(i) & 63)
			if s.pieceFilesOK(i, bad) {
				s.setBit(i)
			}
		}
	}
	trusted := s.VerifiedCount()

	sizes := make([]int64, len(s.files))
	for i := range s.files {
		sizes[i] = s.files[i].stamp.Size
	}
	var cand []int
	for i := 0; i < n; i++ {
		if s.Verified(i) {
			continue
		}
		ok, err := s.pieceOnDisk(i, sizes)
		if err != nil {
			return err
		}
		if ok {
			cand = append(cand, i)
		}
	}
	found := 0
	if len(cand) > 0 {
		var mu sync.Mutex
		err := s.hashPieces(context.Background(), cand, s.opts.Progress, func(i int, ok bool) {
			if ok {
				s.markFilesDirty(i) // the bytes may still be only in the page cache
				s.setBit(i)
				mu.Lock()
				found++
				mu.Unlock()
			}
		})
		if err != nil {
			return err
		}
	}
	// Rewrite the record at the next Sync only when it no longer says what we know.
	s.changed.Store(staleStamps || !s.sameAsRecorded())
	s.log.Debug("cache: opened storage", "data", s.opts.DataDir, "pieces", n,
		"trusted", trusted, "hashed", len(cand), "found", found)
	return nil
}

// loadRecord reads the record and checks it belongs to this torrent; it returns nil (and
// logs why) when it is missing or unusable.
func (s *Storage) loadRecord() *record {
	rec, err := readRecord(s.opts.RecordPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case rec.NumPieces != s.info.NumPieces():
		why = fmt.Sprintf("record has %d pieces, torrent has %d", rec.NumPieces, s.info.NumPieces())
	case rec.PieceLength != s.info.PieceLength || rec.TotalLength != s.info.Length:
		why = "record piece length or total length differs"
	case rec.Layout != s.layout:
		why = "record is for another torrent layout"
	case rec.InfoHash != s.opts.InfoHash && rec.InfoHash != (zeroHash) && s.opts.InfoHash != (zeroHash):
		why = "record is for another info hash"
	case len(rec.Files) != len(s.files):
		why = "record file count differs"
	default:
		return rec
	}
	s.log.Warn("cache: ignoring completion record; verifying the files on disk instead",
		"record", s.opts.RecordPath, "reason", why)
	return nil
}

var zeroHash [20]byte

// sameAsRecorded reports whether the verified set equals what the record claims.
func (s *Storage) sameAsRecorded() bool {
	for i := range s.bits {
		if s.bits[i].Load() != s.recorded[i] {
			return false
		}
	}
	return true
}

// pieceFilesOK reports whether none of the files piece i touches is marked bad.
func (s *Storage) pieceFilesOK(i int, bad []bool) bool {
	off := s.info.PieceOffset(i)
	end := off + s.info.PieceSize(i)
	files := s.info.Files
	for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
		if bad[fi] {
			return false
		}
	}
	return true
}

func (s *Storage) markFilesDirty(i int) {
	off := s.info.PieceOffset(i)
	end := off + s.info.PieceSize(i)
	files := s.info.Files
	for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
		if !files[fi].Padding && files[fi].Length > 0 {
			s.files[fi].dirty.Store(true)
		}
	}
}

// pieceOnDisk reports whether piece i is worth hashing: every file it touches exists and is
// long enough (sizes[i] is the size on disk, -1 when missing), and at least one of its byte
// ranges holds allocated data (SEEK_DATA). A piece made only of pad bytes always is. A piece
// of zeros that lies entirely in holes is not found this way; it is fetched again.
func (s *Storage) pieceOnDisk(i int, sizes []int64) (bool, error) {
	off := s.info.PieceOffset(i)
	end := off + s.info.PieceSize(i)
	files := s.info.Files
	real, data := false, false
	for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
		f := &files[fi]
		if f.Padding || f.Length == 0 {
			continue
		}
		real = true
		lo, hi := max(off, f.Offset), min(end, f.Offset+f.Length)
		if sizes[fi] < hi-f.Offset {
			return false, nil
		}
		if data {
			continue
		}
		r, err := s.reader(fi)
		if err != nil {
			return false, fmt.Errorf("open %s: %w", s.files[fi].path, unwrapPath(err))
		}
		if data, err = hasData(r, lo-f.Offset, hi-lo); err != nil {
			return false, fmt.Errorf("seek data in %s: %w", s.files[fi].path, err)
		}
	}
	return data || !real, nil
}

// hashPieces reads and SHA-1s the given pieces on all cores and calls fn with each result
// (from several goroutines). Read errors count as a mismatch.
func (s *Storage) hashPieces(ctx context.Context, pieces []int, progress func(done, total int), fn func(i int, ok bool)) error {
	workers := min(runtime.GOMAXPROCS(0), len(pieces))
	var next, done atomic.Int64
	var progMu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, s.info.PieceLength)
			h := sha1.New()
			var sum [20]byte
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(pieces) {
					return
				}
				i := pieces[k]
				b, err := s.ReadPiece(i, buf)
				ok := false
				if err != nil {
					s.log.Debug("cache: cannot read piece to verify it", "piece", i, "err", err)
				} else {
					h.Reset()
					h.Write(b)
					ok = [20]byte(h.Sum(sum[:0])) == s.info.Pieces[i]
				}
				fn(i, ok)
				if progress != nil {
					progMu.Lock()
					progress(int(done.Add(1)), len(pieces))
					progMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// Check re-hashes every piece that is verified or has bytes on disk, in parallel on all
// cores, and sets the verified set to exactly the pieces that hash right; then it syncs the
// record. progress (may be nil) is called with (done, total) from several goroutines, never
// at once. When ctx is cancelled Check stops and returns ctx.Err(); pieces checked so far
// keep their new state.
func (s *Storage) Check(ctx context.Context, progress func(done, total int)) error {
	sizes := make([]int64, len(s.files))
	for i := range s.files {
		sizes[i] = -1
		if s.info.Files[i].Padding {
			continue
		}
		st, err := s.statFile(i, nil)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if st != nil {
			sizes[i] = st.Size()
		}
	}
	var cand []int
	for i := 0; i < s.info.NumPieces(); i++ {
		ok, err := s.pieceOnDisk(i, sizes)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if ok || s.Verified(i) {
			cand = append(cand, i)
		} else {
			s.clearBit(i)
		}
	}
	var bad atomic.Int64
	err := s.hashPieces(ctx, cand, progress, func(i int, ok bool) {
		if ok {
			if !s.Verified(i) {
				s.markFilesDirty(i)
				s.setBit(i)
			}
		} else if s.clearBit(i) {
			bad.Add(1)
		}
	})
	if bad.Load() > 0 {
		s.log.Warn("cache: check found corrupt pieces", "data", s.opts.DataDir, "pieces", bad.Load())
	}
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if err := s.Sync(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	return nil
}
