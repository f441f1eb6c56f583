package fetch

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gotfs/gotfs/torrentfile"
)

// Readahead defaults.
const (
	// DefaultMaxReadahead bounds a reader's readahead window (--readahead). The window grows
	// to it only while reads stay sequential (cp, a player's stream), doubling from
	// minReadahead; a copy from a fast swarm needs a deep one to keep every peer's pipeline
	// full. 1 GiB from 4 local seeders: a cold cat of the mount ran at 0.72x of `download`
	// with 32 MiB and at 0.82x with 128 MiB (medians of 3); 512 MiB gained nothing more (what
	// remains is the CPU of the FUSE copy, see docs/DESIGN.md).
	DefaultMaxReadahead = 128 << 20
	minReadahead        = 1 << 20
	// sequentialSlack is how far a read may start from the previous read's end and still count
	// as sequential (the kernel reorders and splits reads).
	sequentialSlack = 1 << 20
	// HeadTailHint is how much of the start and end of an opened file is fetched early
	// (players read an index at the end).
	HeadTailHint = 2 << 20
)

// ReaderOptions tunes a Reader.
type ReaderOptions struct {
	// MaxReadahead bounds the readahead window in bytes (0 = DefaultMaxReadahead, <0 = none).
	MaxReadahead int64
	// HeadTail fetches the first and last bytes of the file early (0 = none).
	HeadTail int64
}

// Reader reads one file of a torrent, fetching what it reads first. Each open file handle owns
// one Reader for its whole life, so its readahead window can grow while reads stay sequential.
// A Reader is safe for concurrent use.
type Reader struct {
	t          *Torrent
	file       int
	base, size int64

	// Guarded by t.mu.
	waits        map[int]time.Time // pieces a read is blocked on, with the oldest wait's start
	waitCount    map[int]int
	waitingReads int
	ra           readahead
	hints        [][2]int // piece ranges fetched early (head and tail)
	closed       bool
}

// NewReader opens a reader on file index fileIndex.
func (t *Torrent) NewReader(fileIndex int, opts ReaderOptions) (*Reader, error) {
	if fileIndex < 0 || fileIndex >= len(t.info.Files) {
		return nil, fmt.Errorf("open file %d of %s: no such file", fileIndex, t.info.Name)
	}
	f := t.info.Files[fileIndex]
	ra := opts.MaxReadahead
	if ra == 0 {
		ra = DefaultMaxReadahead
	}
	r := &Reader{
		t: t, file: fileIndex, base: f.Offset, size: f.Length,
		waits: map[int]time.Time{}, waitCount: map[int]int{},
		ra: readahead{info: t.info, base: f.Offset, size: f.Length, max: max(ra, 0)},
	}
	if h := min(opts.HeadTail, f.Length); h > 0 {
		a0, a1 := t.info.PieceRange(f.Offset, h)
		b0, b1 := t.info.PieceRange(f.Offset+f.Length-h, h)
		r.hints = [][2]int{{a0, a1}, {b0, b1}}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.acceptsIncoming() {
		return nil, ErrClosed
	}
	t.readers[r] = struct{}{}
	if len(r.hints) > 0 {
		t.recomputePriorityLocked()
		t.wakeAllLocked()
	}
	return r, nil
}

// Size returns the file's size.
func (r *Reader) Size() int64 { return r.size }

// FileIndex returns the index of the file in the torrent's Files.
func (r *Reader) FileIndex() int { return r.file }

// Close releases the reader's priorities.
func (r *Reader) Close() error {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	delete(t.readers, r)
	t.recomputePriorityLocked()
	return nil
}

// ReadAt reads len(p) bytes at file offset off, waiting until the pieces under them are verified.
// It returns io.EOF at the end of the file, and ctx's error when ctx ends first.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	n := int64(len(p))
	short := false
	if off+n > r.size {
		n, short = r.size-off, true
	}
	release, err := r.WaitPinned(ctx, off, n)
	if err != nil {
		return 0, err
	}
	got, err := r.t.store.ReadAt(p[:n], r.base+off)
	release()
	if err == nil && short {
		err = io.EOF
	}
	return got, err
}

// Wait blocks until the file bytes [off, off+n) are verified, giving their pieces the highest
// priority, and moves the readahead window. Afterwards the bytes can be read from the storage
// file directly; use WaitPinned when they must also stay there (a size-bounded cache).
func (r *Reader) Wait(ctx context.Context, off, n int64) error {
	release, err := r.WaitPinned(ctx, off, n)
	release()
	return err
}

// PinVerified pins the pieces under [off, off+n) when every one of them is verified, and
// reports false (pinning nothing) when one is not; it never waits. It is for a caller that
// must not block, such as an open that serves a whole file by passthrough only if it is
// complete. release is never nil and may be called more than once.
func (r *Reader) PinVerified(off, n int64) (release func(), ok bool) {
	t := r.t
	first, last, n := r.pieceSpan(off, n)
	if n <= 0 {
		return func() {}, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.closed || !t.acceptsIncoming() {
		return func() {}, false
	}
	if !t.pt.pinVerified(first, last) {
		return func() {}, false
	}
	return t.unpinFunc(first, last), true
}

// pieceSpan clamps [off, off+n) of the file to its size and returns the pieces under it
// [first, last) and the clamped length (<= 0: nothing to read).
func (r *Reader) pieceSpan(off, n int64) (first, last int, clamped int64) {
	if off+n > r.size {
		n = r.size - off
	}
	if n <= 0 {
		return 0, 0, n
	}
	first, last = r.t.info.PieceRange(r.base+off, n)
	return first, last, n
}

// unpinFunc returns a release for pins on [first, last) that acts once.
func (t *Torrent) unpinFunc(first, last int) func() {
	var once bool
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if once {
			return
		}
		once = true
		t.pt.unpin(first, last)
	}
}

// WaitPinned is Wait that also pins the pieces under [off, off+n): they are not evicted until
// release is called (after the bytes were copied or spliced to the caller). release is never
// nil and may be called more than once.
func (r *Reader) WaitPinned(ctx context.Context, off, n int64) (release func(), err error) {
	t := r.t
	first, last, n := r.pieceSpan(off, n)
	if n <= 0 {
		return func() {}, nil
	}
	t.mu.Lock()
	if r.closed || !t.acceptsIncoming() {
		t.mu.Unlock()
		return func() {}, ErrClosed
	}
	changed := r.ra.advance(off, n)
	now := time.Now()
	t.pt.used(first, last, now.UnixNano())
	t.pt.pin(first, last)
	var chans []chan struct{}
	var pieces []int
	for i := first; i < last; i++ {
		if t.pt.verified(i) {
			continue
		}
		ch := t.waiters[i]
		if ch == nil {
			ch = make(chan struct{})
			t.waiters[i] = ch
		}
		chans = append(chans, ch)
		pieces = append(pieces, i)
		if r.waitCount[i] == 0 {
			r.waits[i] = now
		}
		r.waitCount[i]++
	}
	if len(pieces) > 0 {
		r.waitingReads++
		changed = true
	}
	if changed {
		t.recomputePriorityLocked()
		t.wakeAllLocked()
	}
	t.mu.Unlock()
	release = t.unpinFunc(first, last)
	if len(pieces) == 0 {
		return release, nil
	}
	for _, ch := range chans {
		select {
		case <-ch:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.closed:
			err = ErrClosed
		}
		break
	}
	t.mu.Lock()
	for _, i := range pieces {
		if r.waitCount[i]--; r.waitCount[i] <= 0 {
			delete(r.waitCount, i)
			delete(r.waits, i)
		}
		if err == nil && !t.pt.verified(i) {
			// Woken without the piece: it verified but could not be stored.
			err = fmt.Errorf("piece %d could not be stored: %w", i, t.lastStoreErr)
		}
	}
	r.waitingReads--
	if err != nil {
		// The pieces no longer have a read waiting on them (unless another read waits too):
		// they fall back to readahead or nothing. After a successful wait every piece is
		// verified, so no priority changed and the O(pieces) recompute is skipped.
		t.recomputePriorityLocked()
		t.wakeAllLocked()
	}
	t.mu.Unlock()
	if err != nil {
		release()
		return func() {}, fmt.Errorf("wait for pieces %d-%d of %s: %w", first, last-1, t.info.Name, err)
	}
	return release, nil
}

// appendClaimsLocked appends the reader's claims on pieces: the pieces its blocked reads wait
// on, its readahead window, its head and tail hints.
func (r *Reader) appendClaimsLocked(cs []claim) []claim {
	for i, since := range r.waits {
		cs = append(cs, claim{first: i, last: i + 1, cls: prioNow, key: since.UnixNano(), startsStream: r.ra.startsStream()})
	}
	if r.ra.first < r.ra.last {
		cs = append(cs, claim{first: r.ra.first, last: r.ra.last, cls: prioReadahead})
	}
	for _, h := range r.hints {
		cs = append(cs, claim{first: h[0], last: h[1], cls: prioReadahead, key: hintKeyBase})
	}
	return cs
}

// readahead plans one reader's readahead window: sequential reads double it up to its bound,
// a seek starts it again from the smallest size. It is a plain value, tested without a
// torrent's engine.
type readahead struct {
	info       *torrentfile.Info
	base, size int64 // the file's offset in the torrent and its size
	max        int64 // bound of the window (0: no readahead)

	next        int64 // file offset just after the last read
	window      int64 // current size
	first, last int   // the window's pieces [first, last)
}

// advance moves the window after a read of [off, off+n) of the file and reports whether the
// pieces it covers changed.
func (ra *readahead) advance(off, n int64) bool {
	if ra.max == 0 {
		return false
	}
	sequential := off >= ra.next-sequentialSlack && off <= ra.next+sequentialSlack && ra.next > 0
	switch {
	case off == 0 && ra.next == 0:
		ra.window = minReadahead
	case sequential:
		ra.window = min(max(ra.window*2, minReadahead), ra.max)
	default:
		ra.window = minReadahead
	}
	if end := off + n; end > ra.next || !sequential {
		ra.next = end
	}
	start := ra.next
	end := min(start+ra.window, ra.size)
	first, last := 0, 0
	if end > start {
		first, last = ra.info.PieceRange(ra.base+start, end-start)
	}
	if first == ra.first && last == ra.last {
		return false
	}
	ra.first, ra.last = first, last
	return true
}

// startsStream reports whether the last read started a stream (the first read of the file or
// a seek) rather than continuing one: its blocks are worth asking of a second peer sooner.
func (ra *readahead) startsStream() bool { return ra.window <= minReadahead }
