package fusefs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gotfs/gotfs/fetch"
)

// blockSize is the st_blksize reported for files: tools such as cp read this much at a time.
const blockSize = 1 << 20

// dirNode is a read-only folder (0555 less the umask) whose children are persistent inodes.
type dirNode struct {
	fs.Inode
	fs    *FS
	mtime time.Time
}

var (
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeStatfser  = (*fileNode)(nil)
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
)

// Getattr reports a read-only folder.
func (d *dirNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFDIR | d.fs.dirMode
	out.Nlink = 2
	out.Owner = fuse.Owner{Uid: d.fs.uid, Gid: d.fs.gid}
	out.SetTimes(nil, &d.mtime, &d.mtime)
	out.SetTimeout(entryTimeout)
	return 0
}

// rootNode is the mount's root: one entry per torrent.
type rootNode struct {
	dirNode
}

// Getattr reports the root folder; its mtime is the mount time.
func (r *rootNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := r.dirNode.Getattr(ctx, fh, out)
	// Torrents may be added while mounted: keep the root's attributes short-lived.
	out.SetTimeout(attrTimeout)
	return errno
}

// Statfs reports the torrents' total size as used and nothing free.
func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return r.fs.statfs(out)
}

func (f *FS) statfs(out *fuse.StatfsOut) syscall.Errno {
	total, files := f.totalSize.Load(), uint64(f.fileCount.Load())
	const bs = 4096
	*out = fuse.StatfsOut{
		Blocks: uint64((total + bs - 1) / bs), Files: files,
		Bsize: bs, Frsize: bs, NameLen: 255,
	}
	return 0
}

// fileNode is one file of a torrent.
type fileNode struct {
	fs.Inode
	fs    *FS
	t     *fetch.Torrent
	e     *entry // the torrent's entry: counts open handles, refuses opens once removed
	idx   int    // index in Info.Files
	size  int64
	mtime time.Time

	// The kernel refuses to mix passthrough and other opens of one file, and every passthrough
	// open of it must name the same backing (the cache file registered with the kernel): mu
	// guards the count of each kind open now, so every open takes the kind the others have, and
	// backingID, the registration that passOpen's handles share (0 when passOpen is 0).
	mu        sync.Mutex
	otherOpen int
	passOpen  int
	backingID int32
}

// Getattr reports a read-only file (0444 less the umask); st_blocks counts its verified bytes so du shows progress.
func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFREG | n.fs.fileMode
	out.Nlink = 1
	out.Size = uint64(n.size)
	verified := n.t.Storage().VerifiedBytesInFile(n.idx)
	out.Blocks = uint64((verified + 511) / 512)
	out.Blksize = blockSize
	out.Owner = fuse.Owner{Uid: n.fs.uid, Gid: n.fs.gid}
	out.SetTimes(nil, &n.mtime, &n.mtime)
	out.SetTimeout(attrTimeout)
	return 0
}

// Statfs answers for the whole filesystem (statfs on a file).
func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.fs.statfs(out)
}

// Open makes a handle with its own fetch.Reader. It never waits on the network: the head and
// tail hints are only priorities.
func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.fs.closed.Load() {
		return nil, 0, syscall.EIO
	}
	if !n.e.acquire() {
		return nil, 0, syscall.ENOENT // the torrent was removed from the mount
	}
	r, err := n.t.NewReader(n.idx, fetch.ReaderOptions{MaxReadahead: n.fs.opts.MaxReadahead, HeadTail: n.fs.opts.HeadTail})
	if err != nil {
		n.e.release(n.fs)
		n.fs.log.Warn("open", "file", n.t.Metainfo().Info.Files[n.idx].RelPath(), "err", err)
		return nil, 0, syscall.EIO
	}
	h := &handle{n: n, r: r}
	direct := flags&syscall.O_DIRECT != 0
	n.mu.Lock()
	defer n.mu.Unlock()
	// Every byte verified and no ordinary open in the way: the kernel reads the cache file
	// itself (FUSE passthrough), with the whole file pinned so that no eviction punches a hole
	// in it while the handle is open. Once one open is passthrough the kernel demands that
	// later ones are too, O_DIRECT ones included (they then follow the cache file's alignment
	// rules); an O_DIRECT open never starts passthrough mode, so while no passthrough open
	// exists it may read at any offset.
	maxSize := n.fs.opts.PassthroughMaxSize
	eligible := n.fs.passthrough && n.size > 0 && (maxSize <= 0 || n.size <= maxSize)
	if eligible && (n.passOpen > 0 || (!direct && n.otherOpen == 0 && n.verified(0, n.size))) {
		// Never wait here (n.mu is held): a piece evicted since the check above makes this an
		// ordinary open, unless passthrough handles are open (they pin the file whole).
		release, ok := r.PinVerified(0, n.size)
		if ok && (n.passOpen > 0 || n.registerBacking()) {
			h.unpin = release
			n.passOpen++
			n.fs.passOpens.Add(1)
			// The flag alone tells rawFS.Open to hand the kernel n.backingID (see passthrough.go).
			return h, fuse.FOPEN_PASSTHROUGH, 0
		}
		release()
	}
	n.otherOpen++
	if direct {
		// Direct I/O never goes through the page cache: the kernel reads at any offset
		// through Read.
		return h, fuse.FOPEN_DIRECT_IO, 0
	}
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

// registerBacking registers the cache file with the kernel as the backing of the file's
// passthrough opens. n.mu is held and no passthrough handle is open.
func (n *fileNode) registerBacking() bool {
	f, err := n.t.Storage().File(n.idx)
	if err == nil {
		id, errno := n.fs.server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
		if errno == 0 {
			n.backingID = id
			return true
		}
		err = errno
	}
	n.fs.log.Debug("passthrough unavailable", "file", n.t.Metainfo().Info.Files[n.idx].RelPath(), "err", err)
	return false
}

// backing returns the registration the file's passthrough handles share (0 when none is
// open).
func (n *fileNode) backing() int32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.backingID
}

// handle is one open file (buffered, O_DIRECT or passthrough): it owns one fetch.Reader for its
// whole life, so the engine's readahead window grows while reads stay sequential.
//
// It must never have a PassthroughFd method (fs.FilePassthroughFder): go-fuse would then
// register backings itself, with a per-node count that every release decrements, the
// releases of handles that never took a reference included.
type handle struct {
	n     *fileNode
	r     *fetch.Reader
	unpin func() // set for a passthrough handle: the whole file is pinned while it is open
}

// Read waits until the pieces under [off, off+len(dest)) are verified and answers with the
// cache file's descriptor, which the kernel splices without a copy.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := h.n
	n.fs.reads.Add(1)
	if off >= n.size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	if off < 0 {
		return nil, syscall.EINVAL
	}
	sz := min(int64(len(dest)), n.size-off)
	release, errno := h.wait(ctx, off, sz)
	if errno != 0 {
		return nil, errno
	}
	if !n.fs.enter() {
		release()
		return nil, syscall.EIO
	}
	f, err := n.t.Storage().File(n.idx)
	if err != nil {
		n.fs.leave()
		release()
		n.fs.log.Warn("read", "file", n.t.Metainfo().Info.Files[n.idx].RelPath(), "err", err)
		return nil, syscall.EIO
	}
	return &fdResult{fs: n.fs, release: release, fd: f.Fd(), off: off, sz: int(sz)}, 0
}

// wait blocks until the range is verified and pins its pieces (a size-bounded cache must not
// evict them before the kernel has spliced them); release unpins. A read of verified bytes
// passes the FUSE context straight through (it does not block; the call only moves the
// readahead window); a read that must wait also ends on unmount and on the read timeout.
func (h *handle) wait(ctx context.Context, off, sz int64) (release func(), errno syscall.Errno) {
	n := h.n
	if n.verified(off, sz) {
		release, err := h.r.WaitPinned(ctx, off, sz)
		if err != nil {
			release()
			return nil, h.errno(ctx, off, sz, err, 0)
		}
		return release, 0
	}
	start := time.Now()
	var wctx context.Context
	var cancel context.CancelFunc
	if d := n.fs.opts.ReadTimeout; d > 0 {
		wctx, cancel = context.WithTimeout(ctx, d)
	} else {
		wctx, cancel = context.WithCancel(ctx)
	}
	stop := context.AfterFunc(n.fs.ctx, cancel)
	release, err := h.r.WaitPinned(wctx, off, sz)
	stop()
	cancel()
	if err != nil {
		release()
		return nil, h.errno(ctx, off, sz, err, time.Since(start))
	}
	n.fs.log.Debug("read waited", "file", n.t.Metainfo().Info.Files[n.idx].RelPath(), "off", off, "len", sz, "took", time.Since(start))
	return release, 0
}

// errno maps a failed wait: an interrupt (the FUSE context ended) is EINTR, anything else
// (read timeout, unmount, closed torrent) is EIO.
func (h *handle) errno(ctx context.Context, off, sz int64, err error, waited time.Duration) syscall.Errno {
	n := h.n
	name := n.t.Metainfo().Info.Files[n.idx].RelPath()
	if ctx.Err() != nil {
		n.fs.log.Debug("read interrupted", "file", name, "off", off, "len", sz, "waited", waited)
		return syscall.EINTR
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		n.fs.log.Warn("read timed out", "file", name, "off", off, "len", sz, "timeout", n.fs.opts.ReadTimeout)
	case n.fs.ctx.Err() != nil:
		n.fs.log.Debug("read ended by unmount", "file", name, "off", off)
	default:
		n.fs.log.Warn("read failed", "file", name, "off", off, "len", sz, "err", err)
	}
	return syscall.EIO
}

// verified reports whether every piece under the file bytes [off, off+sz) is verified.
func (n *fileNode) verified(off, sz int64) bool {
	info := &n.t.Metainfo().Info
	st := n.t.Storage()
	first, last := info.PieceRange(info.Files[n.idx].Offset+off, sz)
	for i := first; i < last; i++ {
		if !st.Verified(i) {
			return false
		}
	}
	return true
}

// Release closes the handle's reader, dropping its priorities. The kernel sends it only after
// it has ended the file's I/O mode for the handle (fs/fuse/file.c, fuse_file_put calls
// fuse_file_io_release before queueing FUSE_RELEASE), so the counts drop at once: an open
// that comes after it may take the other kind. The last passthrough handle unregisters the
// backing (the kernel's open files hold their own references to it; the next passthrough
// open registers the cache file again).
func (h *handle) Release(ctx context.Context) syscall.Errno {
	n := h.n
	n.mu.Lock()
	pass := h.unpin != nil
	if pass {
		h.unpin()
		if n.passOpen--; n.passOpen == 0 {
			if errno := n.fs.server.UnregisterBackingFd(n.backingID); errno != 0 {
				n.fs.log.Debug("unregister passthrough backing", "id", n.backingID, "err", errno)
			}
			n.backingID = 0
		}
	} else {
		n.otherOpen--
	}
	n.mu.Unlock()
	if err := h.r.Close(); err != nil {
		h.n.fs.log.Debug("close reader", "err", err)
	}
	n.e.release(n.fs)
	if hook := n.fs.testHookReleased.Load(); hook != nil {
		(*hook)(pass)
	}
	return 0
}

// fdResult is a read answered from a cache file descriptor. go-fuse splices it into
// /dev/fuse (it implements Seekable like fuse.ReadResultFd) and calls Done afterwards, which
// unpins the pieces and tells Unmount that the descriptor is no longer in use.
type fdResult struct {
	fs      *FS
	release func() // unpins the pieces
	fd      uintptr
	off     int64
	sz      int
}

// Seekable gives go-fuse the descriptor to splice from.
func (r *fdResult) Seekable() (fd uintptr, off int64, sz int) { return r.fd, r.off, r.sz }

// Bytes reads the range into buf when splicing is not possible.
func (r *fdResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	sz := min(len(buf), r.sz)
	n, err := syscall.Pread(int(r.fd), buf[:sz], r.off)
	if err != nil {
		return nil, fuse.ToStatus(err)
	}
	return buf[:max(n, 0)], fuse.OK
}

// Size returns the size of the range.
func (r *fdResult) Size() int { return r.sz }

// Done unpins the pieces and marks the descriptor as no longer in use.
func (r *fdResult) Done() {
	if r.fs != nil {
		r.release()
		r.fs.leave()
		r.fs = nil
	}
}
