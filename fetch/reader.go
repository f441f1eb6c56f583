package fetch

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Readahead defaults.
const (
	// DefaultMaxReadahead bounds a reader's readahead window (--readahead).
	DefaultMaxReadahead = 32 << 20
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
	t            *Torrent
	file         int
	base, size   int64
	maxReadahead int64

	// Guarded by t.mu.
	waits        map[int]time.Time // pieces a read is blocked on, with the oldest wait's start
	waitCount    map[int]int
	waitingReads int
	next         int64 // file offset just after the last read
	window       int64 // current readahead size
	raFirst      int   // readahead pieces [raFirst, raLast)
	raLast       int
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
		t: t, file: fileIndex, base: f.Offset, size: f.Length, maxReadahead: max(ra, 0),
		waits: map[int]time.Time{}, waitCount: map[int]int{},
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
	for i := first; i < last; i++ {
		if !t.store.Verified(i) {
			return func() {}, false
		}
	}
	for i := first; i < last; i++ {
		t.pins[i]++
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
		for i := first; i < last; i++ {
			if t.pins[i]--; t.pins[i] <= 0 {
				delete(t.pins, i)
			}
		}
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
	changed := r.moveWindowLocked(off, n)
	t.usedLocked(first, last, time.Now().UnixNano())
	var chans []chan struct{}
	var pieces []int
	now := time.Now()
	for i := first; i < last; i++ {
		t.pins[i]++
		if t.store.Verified(i) {
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
		if err == nil && !t.store.Verified(i) {
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

// moveWindowLocked updates the readahead window after a read of [off, off+n) and reports
// whether the pieces it covers changed. Sequential reads double the window up to its bound; a
// seek starts it again from the smallest size.
func (r *Reader) moveWindowLocked(off, n int64) bool {
	if r.maxReadahead == 0 {
		return false
	}
	sequential := off >= r.next-sequentialSlack && off <= r.next+sequentialSlack && r.next > 0
	switch {
	case off == 0 && r.next == 0:
		r.window = minReadahead
	case sequential:
		r.window = min(max(r.window*2, minReadahead), r.maxReadahead)
	default:
		r.window = minReadahead
	}
	if end := off + n; end > r.next || !sequential {
		r.next = end
	}
	start := r.next
	end := min(start+r.window, r.size)
	first, last := 0, 0
	if end > start {
		first, last = r.t.info.PieceRange(r.base+start, end-start)
	}
	if first == r.raFirst && last == r.raLast {
		return false
	}
	r.raFirst, r.raLast = first, last
	return true
}
