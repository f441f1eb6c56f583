//go:build !linux

package cache

import (
	"errors"
	"os"
)

const oNoFollow = 0

func punchHole(f *os.File, off, n int64) error { return errors.ErrUnsupported }

func allocate(f *os.File, n int64) error { return nil }

func hasData(f *os.File, off, n int64) (bool, error) { return n > 0, nil }

func allocatedBytes(fi os.FileInfo) int64 { return fi.Size() }

func modTimeNs(fi os.FileInfo) int64 { return fi.ModTime().UnixNano() }

func startWriteback(f *os.File) error { return nil }

// writeVectorAt writes the slices of bufs one after another at off of f (inline is a Linux
// matter).
func writeVectorAt(f *os.File, inline bool, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

// readAt reads len(p) bytes at off of f.
func readAt(f *os.File, local bool, p []byte, off int64) (int, error) { return f.ReadAt(p, off) }

// onLocalDisk: inline calls are made on Linux only.
func onLocalDisk(f *os.File) bool { return false }
