//go:build !linux

package cache

import (
	"errors"
	"os"
)

const oNoFollow = 0

func punchHole(f *os.File, off, n int64) error { return errors.ErrUnsupported }

func hasData(f *os.File, off, n int64) (bool, error) { return n > 0, nil }

func allocatedBytes(fi os.FileInfo) int64 { return fi.Size() }

func modTimeNs(fi os.FileInfo) int64 { return fi.ModTime().UnixNano() }

func startWriteback(f *os.File) error { return nil }

// writeVectorAt writes the slices of bufs one after another at off of f.
func writeVectorAt(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}
