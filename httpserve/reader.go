package httpserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gotfs/gotfs/fetch"
)

// minSpan is how much a wait covers at least, rounded up to whole pieces: net/http copies a
// body 32 KiB at a time, and one wait (with its pins and readahead move) per 32 KiB would cost
// more than a FUSE read of up to 1016 KiB. A piece is verified whole, so the rest of the piece under
// a read never makes it wait longer.
const minSpan = 128 << 10

// fileReader is the io.ReadSeeker that http.ServeContent reads one file of a torrent through.
// Its fetch.Reader is opened at the first Read (a HEAD, a 304 or a 416 never opens one) and,
// like a FUSE handle's, lives as long as the request, so the request's reads drive the
// pieces' priorities and its readahead window. Only verified bytes are returned: each Read
// copies from pieces that a WaitPinned call saw verified and that stay pinned (no eviction)
// until the reads move past them or the reader is closed.
type fileReader struct {
	ctx     context.Context
	t       *fetch.Torrent
	file    int
	base    int64 // the file's offset in the torrent
	size    int64
	opts    fetch.ReaderOptions
	timeout time.Duration // bounds one wait (0: none)

	r      *fetch.Reader
	off    int64
	pinLo  int64 // file bytes [pinLo, pinHi) are verified and pinned
	pinHi  int64
	unpin  func()
	closed bool
}

func newFileReader(ctx context.Context, t *fetch.Torrent, file int, opts fetch.ReaderOptions, timeout time.Duration) *fileReader {
	f := t.Metainfo().Info.Files[file]
	return &fileReader{ctx: ctx, t: t, file: file, base: f.Offset, size: f.Length, opts: opts, timeout: timeout}
}

// Seek sets the offset of the next Read; it never reads.
func (f *fileReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek to negative offset %d", offset)
	}
	f.off = offset
	return offset, nil
}

// Read copies verified bytes at the current offset, waiting for their pieces first.
func (f *fileReader) Read(p []byte) (int, error) {
	if f.closed {
		return 0, errors.New("read of a closed file reader")
	}
	if f.off >= f.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if f.off < f.pinLo || f.off >= f.pinHi {
		if err := f.pin(); err != nil {
			return 0, err
		}
	}
	n := min(int64(len(p)), f.pinHi-f.off)
	got, err := f.t.Storage().ReadAt(p[:n], f.base+f.off)
	f.off += int64(got)
	if err != nil {
		return got, fmt.Errorf("read %s: %w", f.t.Metainfo().Info.Files[f.file].RelPath(), err)
	}
	return got, nil
}

// pin waits until the pieces under the span at the current offset are verified and pins them,
// releasing the previous span.
func (f *fileReader) pin() error {
	f.release()
	if f.r == nil {
		r, err := f.t.NewReader(f.file, f.opts)
		if err != nil {
			return err
		}
		f.r = r
	}
	info := &f.t.Metainfo().Info
	lo := f.off
	// The span: [off, off+minSpan) rounded up to the end of its last piece, inside the file.
	lastPiece := (f.base + lo + minSpan - 1) / info.PieceLength
	hi := min((lastPiece+1)*info.PieceLength-f.base, f.size)
	ctx := f.ctx
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	unpin, err := f.r.WaitPinned(ctx, lo, hi-lo)
	if err != nil {
		return err
	}
	f.pinLo, f.pinHi, f.unpin = lo, hi, unpin
	return nil
}

// release drops the pins of the current span.
func (f *fileReader) release() {
	if f.unpin != nil {
		f.unpin()
		f.unpin = nil
	}
	f.pinLo, f.pinHi = 0, 0
}

// Close releases the pins and the fetch.Reader's priorities.
func (f *fileReader) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.release()
	if f.r != nil {
		return f.r.Close()
	}
	return nil
}
