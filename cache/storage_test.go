package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

func testOptions(t testing.TB) Options {
	dir := t.TempDir()
	return Options{DataDir: filepath.Join(dir, "data"), RecordPath: filepath.Join(dir, "complete")}
}

func mustOpen(t testing.TB, info *torrentfile.Info, opts Options) *Storage {
	t.Helper()
	s, err := Open(info, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// crash abandons s without syncing, as kill -9 would (the page cache survives).
func crash(s *Storage) { s.closeFiles() }

func writeAll(t testing.TB, s *Storage, info *torrentfile.Info, data []byte, order []int, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, len(order))
	for w := range workers {
		wg.Go(func() {
			for k := w; k < len(order); k += workers {
				if err := s.WritePiece(order[k], piece(info, data, order[k])); err != nil {
					errc <- err
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestWriteReadOddLayout(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	defer s.Close()

	// Zero-length files exist at once; nothing else does.
	for _, f := range info.Files {
		_, err := os.Stat(filepath.Join(opts.DataDir, f.RelPath()))
		if f.Length == 0 && err != nil {
			t.Errorf("zero-length file %s not created: %v", f.RelPath(), err)
		}
		if f.Length > 0 && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists before any write", f.RelPath())
		}
	}

	order := rand.New(rand.NewPCG(1, 2)).Perm(info.NumPieces())
	writeAll(t, s, info, data, order, 4)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.VerifiedCount(), info.NumPieces(); got != want {
		t.Fatalf("VerifiedCount = %d, want %d", got, want)
	}
	for i, f := range info.Files {
		p := filepath.Join(opts.DataDir, f.RelPath())
		if f.Padding {
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pad file %s was created", p)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(data[f.Offset:f.Offset+f.Length]) {
			t.Errorf("%s: content differs", f.RelPath())
		}
		if v := s.VerifiedBytesInFile(i); v != f.Length {
			t.Errorf("VerifiedBytesInFile(%d) = %d, want %d", i, v, f.Length)
		}
	}
	// The whole stream through ReadAt, at odd offsets and sizes.
	buf := make([]byte, 12345)
	for off := int64(0); off < info.Length; off += int64(len(buf)) - 77 {
		n, err := s.ReadAt(buf, off)
		want := data[off:min(off+int64(len(buf)), info.Length)]
		if n != len(want) || (err != nil && err != io.EOF) || (err == io.EOF) != (off+int64(len(buf)) > info.Length) {
			t.Fatalf("ReadAt(%d) = %d, %v; want %d", off, n, err, len(want))
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("ReadAt(%d): bytes differ", off)
		}
	}
	for i := range info.NumPieces() {
		b, err := s.ReadPiece(i, nil)
		if err != nil || !bytes.Equal(b, piece(info, data, i)) {
			t.Fatalf("ReadPiece(%d): %v", i, err)
		}
		blk := make([]byte, min(1000, len(b)))
		if err := s.ReadBlock(i, len(b)-len(blk), blk); err != nil || !bytes.Equal(blk, b[len(b)-len(blk):]) {
			t.Fatalf("ReadBlock(%d): %v", i, err)
		}
	}
	bf := s.VerifiedBitfield()
	for i := range info.NumPieces() {
		if !bitfieldHas(bf, i) {
			t.Errorf("bitfield lacks piece %d", i)
		}
	}
	if last := bf[len(bf)-1]; info.NumPieces()%8 != 0 && last&(0xff>>(info.NumPieces()%8)) != 0 {
		t.Errorf("spare bits set in bitfield: %08b", last)
	}
	// File gives a working read-only descriptor.
	f, err := s.File(5)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	if _, err := f.ReadAt(b, 10); err != nil || !bytes.Equal(b, data[info.Files[5].Offset+10:][:100]) {
		t.Fatalf("File(5).ReadAt: %v", err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("File(5) is writable")
	}
}

func TestReadBlockUnverified(t *testing.T) {
	info, _ := oddLayout(t)
	s := mustOpen(t, info, testOptions(t))
	defer s.Close()
	if err := s.ReadBlock(0, 0, make([]byte, 10)); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("ReadBlock of unverified piece: %v", err)
	}
	if err := s.WritePiece(0, make([]byte, 5)); err == nil {
		t.Fatal("WritePiece accepted a short piece")
	}
}

func TestSyncReopen(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	for _, i := range []int{0, 2, 4, 6} {
		if err := s.WritePiece(i, piece(info, data, i)); err != nil {
			t.Fatal(err)
		}
	}
	want := s.VerifiedBitfield()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(opts.RecordPath)
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, info, opts)
	if got := s.VerifiedBitfield(); !bytes.Equal(got, want) {
		t.Fatalf("after reopen bitfield %x, want %x", got, want)
	}
	if s.changed.Load() {
		t.Error("a clean reopen wants to rewrite the record")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(opts.RecordPath)
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("Close without changes rewrote the record")
	}
}

func TestCrashResume(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	if err := s.WritePiece(0, piece(info, data, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Pieces 2 and 3 are written but never synced; then piece 3 gets a flipped byte.
	for _, i := range []int{2, 3} {
		if err := s.WritePiece(i, piece(info, data, i)); err != nil {
			t.Fatal(err)
		}
	}
	crash(s)
	flipByte(t, info, opts.DataDir, info.PieceOffset(3)+100)

	s = mustOpen(t, info, opts)
	defer s.Close()
	for i, want := range map[int]bool{0: true, 1: false, 2: true, 3: false} {
		if s.Verified(i) != want {
			t.Errorf("after crash Verified(%d) = %v, want %v", i, !want, want)
		}
	}
	if !s.changed.Load() {
		t.Error("found pieces but the record is not marked stale")
	}
}

// flipByte flips the byte at torrent offset off in its file on disk, keeping its mtime.
func flipByte(t testing.TB, info *torrentfile.Info, dataDir string, off int64) {
	t.Helper()
	f := info.Files[info.FileAt(off)]
	p := filepath.Join(dataDir, f.RelPath())
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := fd.ReadAt(b, off-f.Offset); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := fd.WriteAt(b, off-f.Offset); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func TestRecordTrustAndMismatch(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	opts.InfoHash = torrentfile.Hash{1}
	s := mustOpen(t, info, opts)
	writeAll(t, s, info, data, []int{0, 1, 2, 3, 4, 5}, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A byte flipped behind our back with the mtime kept: the record is trusted.
	flipByte(t, info, opts.DataDir, 10)
	s = mustOpen(t, info, opts)
	if !s.Verified(0) {
		t.Fatal("record not trusted")
	}
	crash(s)
	goodRecord, err := os.ReadFile(opts.RecordPath)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		mutate func(o *Options) *torrentfile.Info
	}{
		{"other info hash", func(o *Options) *torrentfile.Info { o.InfoHash = torrentfile.Hash{2}; return info }},
		{"garbage", func(o *Options) *torrentfile.Info {
			os.WriteFile(o.RecordPath, []byte("GOTFSREC garbage"), 0o644)
			return info
		}},
		{"bit flip", func(o *Options) *torrentfile.Info {
			b := bytes.Clone(goodRecord)
			b[len(b)-6] ^= 1
			os.WriteFile(o.RecordPath, b, 0o644)
			return info
		}},
		{"other piece count", func(o *Options) *torrentfile.Info {
			other := *info
			other.Pieces = append(append([]torrentfile.Hash(nil), info.Pieces...), torrentfile.Hash{})
			other.Files = append([]torrentfile.File(nil), info.Files...)
			other.Files[len(other.Files)-1].Length += info.PieceLength
			other.Length += info.PieceLength
			return &other
		}},
		{"file size changed", func(o *Options) *torrentfile.Info {
			p := filepath.Join(o.DataDir, info.Files[0].RelPath())
			if err := os.Truncate(p, info.Files[0].Length+1); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Truncate(p, info.Files[0].Length) })
			return info
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(opts.RecordPath, goodRecord, 0o644); err != nil {
				t.Fatal(err)
			}
			o := opts
			in := tc.mutate(&o)
			s, err := Open(in, o)
			if err != nil {
				t.Fatal(err)
			}
			defer crash(s)
			if s.Verified(0) {
				t.Error("record trusted: the corrupt piece 0 counts as verified")
			}
			if !s.Verified(2) {
				t.Error("intact piece 2 not found on disk")
			}
		})
	}
}

func TestCheckFindsFlippedByte(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	defer s.Close()
	writeAll(t, s, info, data, rand.Perm(info.NumPieces()), 2)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	bad := info.NumPieces() - 2
	flipByte(t, info, opts.DataDir, info.PieceOffset(bad)+5)
	calls := 0
	if err := s.Check(context.Background(), func(done, total int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != info.NumPieces() {
		t.Errorf("progress called %d times, want %d", calls, info.NumPieces())
	}
	if s.Verified(bad) || s.VerifiedCount() != info.NumPieces()-1 {
		t.Fatalf("Check: Verified(%d)=%v, count %d", bad, s.Verified(bad), s.VerifiedCount())
	}
	rec, err := readRecord(opts.RecordPath)
	if err != nil || bitfieldHas(rec.Bitfield, bad) {
		t.Fatalf("record still lists the corrupt piece (%v)", err)
	}
	// A fresh Storage over a complete folder (seed PATH) recognises it, read-only.
	ro := opts
	ro.ReadOnly = true
	ro.RecordPath = filepath.Join(t.TempDir(), "seed.state")
	s2 := mustOpen(t, info, ro)
	defer s2.Close()
	if s2.VerifiedCount() != info.NumPieces()-1 || s2.Verified(bad) {
		t.Fatalf("seed: %d verified", s2.VerifiedCount())
	}
	if err := s2.WritePiece(bad, piece(info, data, bad)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("WritePiece on read-only storage: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s2.Check(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Check with cancelled ctx: %v", err)
	}
}

func TestEvict(t *testing.T) {
	const pl = 256 << 10
	info, data := buildInfo(t, "ev", pl, []spec{{"x", 2 << 20}, {"y", pl + 1000}}, 7)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	writeAll(t, s, info, data, rand.Perm(info.NumPieces()), 2)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	before, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if before < info.Length {
		t.Fatalf("DiskUsage %d < %d bytes written", before, info.Length)
	}
	// Piece 8 spans x and y.
	for _, i := range []int{3, 8} {
		if err := s.Evict(i); err != nil {
			t.Fatal(err)
		}
		if s.Verified(i) {
			t.Fatalf("piece %d still verified after Evict", i)
		}
	}
	after, _ := s.DiskUsage()
	if before-after < pl+pl/2 {
		t.Fatalf("DiskUsage %d -> %d: holes not punched", before, after)
	}
	rec, err := readRecord(opts.RecordPath)
	if err != nil || bitfieldHas(rec.Bitfield, 3) {
		t.Fatalf("record still lists evicted piece (%v)", err)
	}
	if s.VerifiedBytesInFile(0) != 2<<20-pl-(2<<20-8*pl) {
		t.Errorf("VerifiedBytesInFile(0) = %d", s.VerifiedBytesInFile(0))
	}
	crash(s)
	s = mustOpen(t, info, opts)
	defer s.Close()
	if s.Verified(3) || s.Verified(8) || s.VerifiedCount() != info.NumPieces()-2 {
		t.Fatalf("after reopen: %d verified", s.VerifiedCount())
	}
	// Writing it again brings it back.
	if err := s.WritePiece(3, piece(info, data, 3)); err != nil || !s.Verified(3) {
		t.Fatal(err)
	}
}

func TestENOSPC(t *testing.T) {
	mnt := testenv.SmallTmpfs(t, "1m")
	const pl = 64 << 10
	info, data := buildInfo(t, "big", pl, []spec{{"a", 1 << 20}, {"b", 1 << 20}}, 3)
	opts := Options{DataDir: filepath.Join(mnt, "data"), RecordPath: filepath.Join(t.TempDir(), "complete")}
	s := mustOpen(t, info, opts)
	var werr error
	failed := -1
	for i := range info.NumPieces() {
		if werr = s.WritePiece(i, piece(info, data, i)); werr != nil {
			failed = i
			break
		}
	}
	if werr == nil {
		t.Fatal("2 MiB fit in a 1 MiB tmpfs")
	}
	t.Logf("error: %v", werr)
	if !errors.Is(werr, syscall.ENOSPC) || !bytes.Contains([]byte(werr.Error()), []byte("write piece")) ||
		!bytes.Contains([]byte(werr.Error()), []byte("no space left on device")) {
		t.Fatalf("error lacks context: %v", werr)
	}
	if s.Verified(failed) {
		t.Fatal("failed piece marked verified")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, info, opts)
	defer s.Close()
	if s.VerifiedCount() != failed || s.Verified(failed) {
		t.Fatalf("after reopen %d verified, want %d", s.VerifiedCount(), failed)
	}
}

func TestPathEscape(t *testing.T) {
	info, _ := oddLayout(t)
	for _, bad := range [][]string{
		{"odd", "..", "x"},
		{"..", "x"},
		{"odd", "a/../../x"},
		{"odd", "."},
		{"odd", ""},
		{"odd", "nul\x00"},
		{"/etc", "passwd"},
	} {
		in := *info
		in.Files = append([]torrentfile.File(nil), info.Files...)
		in.Files[0].Path = bad
		if s, err := Open(&in, testOptions(t)); err == nil {
			s.Close()
			t.Errorf("Open accepted path %q", bad)
		}
	}

	// A symlink inside DataDir, present at Open.
	opts := testOptions(t)
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(opts.DataDir, "odd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(opts.DataDir, "odd", "dir")); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(info, opts); err == nil {
		s.Close()
		t.Fatal("Open accepted a symlinked folder inside DataDir")
	} else {
		t.Logf("refused: %v", err)
	}

	// A symlink that appears after Open, before the first write.
	opts = testOptions(t)
	s := mustOpen(t, info, opts)
	defer s.Close()
	if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(opts.DataDir, "odd", "f")); err != nil {
		t.Fatal(err)
	}
	last := info.NumPieces() - 1
	if err := s.WritePiece(last, make([]byte, info.PieceSize(last))); err == nil {
		t.Fatal("WritePiece followed a symlink")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside DataDir: %v", ents)
	}
}

func TestExistingFolderRecognised(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	for _, f := range info.Files {
		if f.Padding {
			continue
		}
		p := filepath.Join(opts.DataDir, f.RelPath())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data[f.Offset:f.Offset+f.Length], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, info, opts)
	defer s.Close()
	if s.VerifiedCount() != info.NumPieces() {
		t.Fatalf("existing folder: %d of %d pieces recognised", s.VerifiedCount(), info.NumPieces())
	}
}

func TestNoAllocs(t *testing.T) {
	info, data := oddLayout(t)
	s := mustOpen(t, info, testOptions(t))
	defer s.Close()
	writeAll(t, s, info, data, rand.Perm(info.NumPieces()), 1)
	buf := make([]byte, 40000)
	blk := make([]byte, 16<<10)
	p1 := piece(info, data, 1)
	if n := testing.AllocsPerRun(50, func() {
		s.ReadAt(buf, 30000)
		s.ReadBlock(1, 16<<10, blk)
		s.Verified(3)
		s.clearBit(1)
		s.WritePiece(1, p1)
	}); n != 0 {
		t.Fatalf("hot path allocates %.1f times per call", n)
	}
}

func TestSyncRecordsOnlyDurable(t *testing.T) {
	// Hammer WritePiece and Sync concurrently; every record must list only pieces whose
	// bytes read back right.
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	defer s.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeAll(t, s, info, data, rand.Perm(info.NumPieces()), 3)
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			rec, err := readRecord(opts.RecordPath)
			if err != nil {
				t.Fatal(err)
			}
			for i := range info.NumPieces() {
				if !bitfieldHas(rec.Bitfield, i) {
					t.Fatalf("final record lacks piece %d", i)
				}
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("timeout")
		}
	}
}

// TestWritebackEvery writes every piece with writeback started after each write (as a download
// does every few MiB): the bytes, the record and a reopen are as without it.
func TestWritebackEvery(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	opts.WritebackEvery = 1
	s := mustOpen(t, info, opts)
	order := rand.New(rand.NewPCG(3, 4)).Perm(info.NumPieces())
	writeAll(t, s, info, data, order, 4)
	got := make([]byte, len(data))
	if _, err := s.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes read back differ from the pieces written")
	}
	for i := range s.files {
		if n := s.files[i].unflushed.Load(); n != 0 {
			t.Errorf("file %d: %d bytes written since the last writeback start, want 0", i, n)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, info, opts)
	defer s.Close()
	if n := s.VerifiedCount(); n != info.NumPieces() {
		t.Errorf("after reopen %d of %d pieces verified", n, info.NumPieces())
	}
}
