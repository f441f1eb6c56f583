//go:build linux

package cache

import (
	"errors"
	"io"
	"os"
	"syscall"

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
// over short writes.
func writeVectorAt(f *os.File, bufs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	cerr := rc.Control(func(fd uintptr) {
		for len(bufs) > 0 {
			n, err := unix.Pwritev(int(fd), bufs, off)
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
