//go:build linux

package cache

import (
	"errors"
	"io"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/gotfs/gotfs/internal/racebuild"
	"golang.org/x/sys/unix"
)

// oNoFollow makes open fail on a symlink as the final path component.
const oNoFollow = unix.O_NOFOLLOW

// punchHole deallocates [off, off+n) of f while keeping its size; the range then reads as zeros.
func punchHole(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

// allocate reserves the blocks of f's first n bytes without changing its size or content
// (fallocate mode 0); a filesystem that cannot is not an error.
func allocate(f *os.File, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, n)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL):
			return nil // the filesystem cannot reserve space (EINVAL: nor in this mode)
		}
		return err
	}
}

// hasData reports whether [off, off+n) of f holds any allocated data, using SEEK_DATA.
// Filesystems without SEEK_DATA support treat the whole file as data, so it answers true.
func hasData(f *os.File, off, n int64) (bool, error) {
	if n <= 0 {
		return false, nil
	}
	// Use the raw fd: *os.File.Seek would also reset the file's offset, which we never use
	// (all I/O is pread/pwrite), so that is harmless, but unix.Seek avoids the os wrapper.
	d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case err == nil:
		return d < off+n, nil
	case errors.Is(err, unix.ENXIO):
		return false, nil // no data at or after off
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return true, nil
	default:
		return false, err
	}
}

// allocatedBytes returns the bytes a file occupies on disk (st_blocks*512).
func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// modTimeNs returns a file's modification time in nanoseconds.
func modTimeNs(fi os.FileInfo) int64 { return fi.ModTime().UnixNano() }

// startWriteback asks the kernel to start writing f's dirty pages to disk without waiting for
// them (sync_file_range SYNC_FILE_RANGE_WRITE).
func startWriteback(f *os.File) error {
	for {
		err := unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		if err != unix.EINTR {
			return err
		}
	}
}

// writeVectorAt writes the slices of bufs one after another at off of f with pwritev, looping
// over short writes. With inline (a file on a local disk, Options.InlineIO) the calls keep
// the goroutine's processor (rawPwritev).
func writeVectorAt(f *os.File, inline bool, bufs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	cerr := rc.Control(func(fd uintptr) {
		for len(bufs) > 0 {
			var n int
			var err error
			if inline {
				n, err = rawPwritev(fd, bufs, off)
			} else {
				n, err = unix.Pwritev(int(fd), bufs, off)
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				werr = err
				return
			}
			if n == 0 {
				werr = io.ErrShortWrite
				return
			}
			off += int64(n)
			for n > 0 {
				if n < len(bufs[0]) {
					bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
					break
				}
				n -= len(bufs[0])
				bufs = bufs[1:]
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return werr
}

// maxInlineIovecs is the most slices one rawPwritev call writes.
const maxInlineIovecs = 64

// rawPwritev is pwritev(2) made as a raw system call, which keeps the goroutine's processor
// (docs/DESIGN.md §5). Only for files whose writes go to the page cache of a local disk
// (onLocalDisk), where a call is tens of microseconds of copying. It writes at most
// maxInlineIovecs slices.
func rawPwritev(fd uintptr, bufs [][]byte, off int64) (int, error) {
	var iov [maxInlineIovecs]unix.Iovec
	k := 0
	for _, b := range bufs {
		if k == len(iov) {
			break
		}
		if len(b) == 0 {
			continue
		}
		iov[k].Base = &b[0]
		iov[k].SetLen(len(b))
		k++
	}
	if k == 0 {
		return 0, nil
	}
	// pwritev takes the offset as two words (low, high); on 64-bit machines (the only ones
	// onLocalDisk allows) the low one holds it all.
	n, _, e := unix.RawSyscall6(unix.SYS_PWRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k), uintptr(off), 0, 0)
	runtime.KeepAlive(bufs)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// readAt reads len(p) bytes at off of f, as os.File.ReadAt does. With local (f is on a local
// disk: onLocalDisk) it first reads what the page cache holds with raw preadv2(RWF_NOWAIT)
// calls, which keep the goroutine's processor and never wait for the disk;
// the rest, which must come from the disk, is read with a blocking call as os.File.ReadAt
// would. Kernels without RWF_NOWAIT (before 4.14) read it all the blocking way, and so does a
// binary built with the race detector (racebuild).
func readAt(f *os.File, local bool, p []byte, off int64) (int, error) {
	n := 0
	if local && !racebuild.Enabled {
		var err error
		if n, err = readCached(f, p, off); err != nil || n == len(p) {
			return n, err
		}
	}
	m, err := f.ReadAt(p[n:], off+int64(n))
	return n + m, err
}

// rwfNoWait is preadv2's RWF_NOWAIT: fail with EAGAIN rather than wait for the disk.
const rwfNoWait = 0x8

// readCached reads from off into p what the page cache holds, stopping at the first byte it
// does not hold (or when the kernel cannot tell: no preadv2 or no RWF_NOWAIT); io.EOF at the
// end of the file.
func readCached(f *os.File, p []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := 0
	var rerr error
	cerr := rc.Control(func(fd uintptr) {
		for n < len(p) {
			iov := unix.Iovec{Base: &p[n]}
			iov.SetLen(len(p) - n)
			// The offset in two words (low, high): on 64-bit machines, the only ones
			// onLocalDisk allows, the low one holds it all.
			m, _, e := unix.RawSyscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(&iov)), 1, uintptr(off+int64(n)), 0, rwfNoWait)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN, e == unix.EOPNOTSUPP, e == unix.ENOSYS, e == unix.EINVAL:
				return // not in the page cache, or no way to know: the caller reads the rest
			case e != 0:
				rerr = &os.PathError{Op: "read", Path: f.Name(), Err: e}
				return
			case m == 0:
				rerr = io.EOF
				return
			}
			n += int(m)
		}
	})
	runtime.KeepAlive(p)
	if cerr != nil {
		return n, cerr
	}
	return n, rerr
}

// localDiskMagics are the statfs(2) types of filesystems whose writes go to the page cache
// of a local disk: ext2/3/4, XFS, Btrfs, F2FS, bcachefs, ZFS, tmpfs and overlayfs (whose
// upper layer is one of them).
var localDiskMagics = [...]int64{0xEF53, 0x58465342, 0x9123683E, 0xF2F52010, 0xCA451A4E, 0x2FC12FC1, 0x01021994, 0x794C7630}

// onLocalDisk reports whether f is on a local disk filesystem (localDiskMagics): whether its
// reads and writes go through the page cache of this machine. Network and FUSE filesystems,
// whose calls may wait on a server, are not. On 32-bit machines it answers
// false: there the raw calls would have to split the file offset into two words, in an order
// and with padding that differ between architectures, so they are left to x/sys/unix.
func onLocalDisk(f *os.File) bool {
	if unsafe.Sizeof(uintptr(0)) < 8 {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	for _, m := range localDiskMagics {
		if int64(st.Type) == m {
			return true
		}
	}
	return false
}
