package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gotfs/gotfs/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestInlineIO: with Options.InlineIO, files on a local disk are written and read with raw
// system calls (rawPwritev, readAt), across runs of more slices than one call takes, short
// blocks, file boundaries and pad files, and read back the same as without.
func TestInlineIO(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	opts.InlineIO = true
	s := mustOpen(t, info, opts)
	defer s.Close()
	const block = 500 // 66 blocks to a 32 KiB piece: more than maxInlineIovecs in one run
	for i := range info.NumPieces() {
		p := piece(info, data, i)
		var run [][]byte
		for b := 0; b < len(p); b += block {
			run = append(run, p[b:min(b+block, len(p))])
		}
		if err := s.WriteBlocks(i, 0, run); err != nil {
			t.Fatalf("WriteBlocks(%d): %v", i, err)
		}
		if ok, err := s.VerifyPiece(i, make([]byte, 4000)); !ok || err != nil {
			t.Fatalf("VerifyPiece(%d) = %v, %v", i, ok, err)
		}
	}
	got := make([]byte, len(data))
	if _, err := s.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes read back differ from those written")
	}
	inline := 0
	for i, f := range info.Files {
		if f.Padding || f.Length == 0 {
			continue
		}
		w := s.files[i].w.Load()
		if w == nil {
			t.Fatalf("file %s was never opened for writing", f.RelPath())
		}
		if s.files[i].local.Load() != onLocalDisk(w) || s.inlineWrites(i) != s.files[i].local.Load() {
			t.Errorf("file %s: local %v, inline writes %v, on a local disk %v", f.RelPath(), s.files[i].local.Load(), s.inlineWrites(i), onLocalDisk(w))
		}
		if s.inlineWrites(i) {
			inline++
		}
	}
	if inline == 0 && testenv.InCI() {
		t.Fatalf("no file of %s is on a local disk: the inline calls were not tested", opts.DataDir)
	}
	// A read past the end of a file that is shorter than the layout says fails as before.
	path := filepath.Join(opts.DataDir, info.Files[0].RelPath())
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAt(make([]byte, 1000), 0); err == nil {
		t.Fatal("ReadAt over a truncated file succeeded")
	}
}

// TestReadFromDiskAfterCache: a read of a local file takes what the page cache holds with
// raw non-waiting calls and the rest, evicted to the disk, with a blocking call: the bytes
// are the same either way, and so is a read that ends past the end of the file.
func TestReadFromDiskAfterCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !onLocalDisk(f) {
		if testenv.InCI() {
			t.Fatalf("%s is not on a local disk", path)
		}
		t.Skip("skipping: reason: the temporary folder is not on a local disk")
	}
	// The second half stays in the page cache; the first is written back and dropped. Under
	// load (CI runs packages side by side) the kernel may keep or bring back some of it, so
	// the eviction is checked with mincore and readCached tried again until it leaves the
	// first half to the disk; what it does return must be the file's bytes.
	got := make([]byte, len(data))
	for try := 0; ; try++ {
		evictHead(t, f, len(data)/2)
		n, err := readCached(f, got, 0)
		if err != nil || !bytes.Equal(got[:n], data[:n]) {
			t.Fatalf("readCached of an evicted range: %d, %v, equal %v", n, err, bytes.Equal(got[:n], data[:n]))
		}
		if n < len(data)/2 {
			break
		}
		if try == 20 {
			t.Fatalf("readCached returned the evicted first half from the page cache 20 times")
		}
	}
	if n, err := readCached(f, got[len(data)/2:], int64(len(data)/2)); n != len(data)/2 || err != nil {
		t.Fatalf("readCached of a cached range: %d, %v; want all %d bytes", n, err, len(data)/2)
	}
	evictHead(t, f, len(data)/2) // so that readAt reads it from the disk
	clear(got)
	if n, err := readAt(f, true, got, 0); n != len(data) || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read of a half-cached file: %d, %v, equal %v", n, err, bytes.Equal(got, data))
	}
	if n, err := readAt(f, true, got, int64(len(data))-100); n != 100 || err != io.EOF || !bytes.Equal(got[:100], data[len(data)-100:]) {
		t.Fatalf("read past the end: %d, %v; want 100, EOF", n, err)
	}
}

// TestPreallocate: Preallocate reserves a file's blocks at its full size and keeps the bytes
// already in it; pad files are never created. A disk too small fails at once, with the file
// named in the error.
func TestPreallocate(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	defer s.Close()
	if err := s.WritePiece(0, piece(info, data, 0)); err != nil {
		t.Fatal(err)
	}
	for i := range info.Files {
		if err := s.Preallocate(i); err != nil {
			t.Fatalf("Preallocate(%d): %v", i, err)
		}
	}
	for _, f := range info.Files {
		st, err := os.Stat(filepath.Join(opts.DataDir, f.RelPath()))
		if f.Padding {
			if err == nil {
				t.Errorf("pad file %s was created", f.RelPath())
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != f.Length || allocatedBytes(st) < f.Length {
			t.Errorf("%s: size %d, %d bytes allocated; want %d and at least as many", f.RelPath(), st.Size(), allocatedBytes(st), f.Length)
		}
	}
	got, err := s.ReadPiece(0, nil)
	if err != nil || !bytes.Equal(got, piece(info, data, 0)) {
		t.Fatalf("piece 0 after Preallocate: %v", err)
	}

	mnt := testenv.SmallTmpfs(t, "1m")
	big, _ := buildInfo(t, "big", 64<<10, []spec{{"a", 2 << 20}}, 3)
	s2 := mustOpen(t, big, Options{DataDir: filepath.Join(mnt, "data"), RecordPath: filepath.Join(t.TempDir(), "complete")})
	defer s2.Close()
	err = s2.Preallocate(0)
	if !errors.Is(err, syscall.ENOSPC) || !bytes.Contains([]byte(err.Error()), []byte("big/a")) {
		t.Fatalf("Preallocate of 2 MiB on a 1 MiB disk: %v, want ENOSPC naming the file", err)
	}
}

// evictHead writes f's first n bytes back and drops them from the page cache, asking again
// until mincore sees none of them there (the kernel drops only clean pages nobody holds).
func evictHead(t *testing.T, f *os.File, n int) {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (n+os.Getpagesize()-1)/os.Getpagesize())
	for try := 0; ; try++ {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fadvise(int(f.Fd()), 0, int64(n), unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatal(errno)
		}
		if !slices.ContainsFunc(vec, func(v byte) bool { return v&1 != 0 }) {
			return
		}
		if try == 100 {
			t.Fatal("FADV_DONTNEED left pages in the page cache 100 times")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
