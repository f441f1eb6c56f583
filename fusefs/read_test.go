package fusefs_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// readFiles has pieces that span several files, a zero-byte file and a short last piece.
var readFiles = []testFile{
	{Path: []string{"a.bin"}, Size: 1_000_000},
	{Path: []string{"empty"}, Size: 0},
	{Path: []string{"sub", "tiny1"}, Size: 5_000},
	{Path: []string{"sub", "tiny2"}, Size: 7_000},
	{Path: []string{"sub", "deeper", "b.bin"}, Size: 3_000_001},
	{Path: []string{"c.bin"}, Size: 777_777},
	{Path: []string{"d.bin"}, Size: 2_500_000},
	{Path: []string{"extras", "notes.txt"}, Size: 12_345},
	{Path: []string{"extras", "e.bin"}, Size: 1_234_567},
}

// swarm is a torrent seeded by two in-process seeders on loopback.
type swarm struct {
	src     string
	mi      *torrentfile.Metainfo
	peers   []netip.AddrPort
	seeders []*fetch.Client
}

func newSwarm(t testing.TB, name string, files []testFile, pieceLen int64, seed uint64, ips ...string) *swarm {
	t.Helper()
	s := &swarm{src: t.TempDir()}
	s.mi = makeTorrent(t, s.src, name, files, pieceLen, seed)
	for _, ip := range ips {
		sd := startSeeder(t, ip, s.mi, s.src)
		s.seeders = append(s.seeders, sd)
		s.peers = append(s.peers, sd.Addr())
	}
	return s
}

func (s *swarm) srcPath(f torrentfile.File) string {
	return filepath.Join(append([]string{s.src}, f.Path...)...)
}

// TestCopyTree copies a whole multi-file torrent out of the mount with cp -r.
func TestCopyTree(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "copy", readFiles, 64<<10, 10, "127.0.0.21", "127.0.0.22")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{HeadTail: fetch.HeadTailHint}, s.peers, s.mi)
	out := t.TempDir()
	start := time.Now()
	if b, err := exec.Command("cp", "-r", filepath.Join(m.dir, "copy"), out).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v: %s", err, b)
	}
	t.Logf("cp -r of %d bytes took %v (%.1f MB/s)", s.mi.Info.Length, time.Since(start), float64(s.mi.Info.Length)/time.Since(start).Seconds()/1e6)
	for _, i := range s.mi.Info.VisibleFiles() {
		f := s.mi.Info.Files[i]
		if fileSHA256(t, s.srcPath(f)) != fileSHA256(t, filepath.Join(append([]string{out}, f.Path...)...)) {
			t.Errorf("%s differs from the source", f.RelPath())
		}
	}
	// du sees the progress: every file is now verified.
	for _, i := range s.mi.Info.VisibleFiles() {
		f := s.mi.Info.Files[i]
		fi, err := os.Stat(m.path(f))
		if err != nil {
			t.Fatal(err)
		}
		if blocks := fi.Sys().(*syscall.Stat_t).Blocks; blocks*512 < f.Length && f.Length > 0 {
			deadline := time.Now().Add(2 * time.Second)
			for blocks*512 < f.Length && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				fi, _ = os.Stat(m.path(f))
				blocks = fi.Sys().(*syscall.Stat_t).Blocks
			}
			if blocks*512 < f.Length {
				t.Errorf("%s: st_blocks %d after a full read of %d bytes", f.RelPath(), blocks, f.Length)
			}
		}
	}
}

// TestRandomRanges reads 1,000 random ranges, many across piece and file boundaries, through
// the page cache and with O_DIRECT (unaligned reads reach the filesystem as they are).
func TestRandomRanges(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "ranges", readFiles, 32<<10, 11, "127.0.0.23", "127.0.0.24")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{HeadTail: fetch.HeadTailHint}, s.peers, s.mi)
	info := &s.mi.Info
	var files []int
	srcData := map[int][]byte{}
	handles := map[int][2]*os.File{}
	for _, i := range info.VisibleFiles() {
		if info.Files[i].Length == 0 {
			continue
		}
		files = append(files, i)
		b, err := os.ReadFile(s.srcPath(info.Files[i]))
		if err != nil {
			t.Fatal(err)
		}
		srcData[i] = b
		// The O_DIRECT handle first: a file already complete (the head and tail hints of the
		// files opened before may have fetched a small one whole) would otherwise open in
		// passthrough mode, and an O_DIRECT open beside it then follows the cache disk's
		// alignment rules (EINVAL at an odd offset), as documented. An O_DIRECT open never
		// starts passthrough, and keeps the buffered open beside it ordinary.
		direct, err := os.OpenFile(m.path(info.Files[i]), os.O_RDONLY|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		cached, err := os.Open(m.path(info.Files[i]))
		if err != nil {
			t.Fatal(err)
		}
		handles[i] = [2]*os.File{cached, direct}
		defer cached.Close()
		defer direct.Close()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for k := range 1000 {
		i := files[rng.IntN(len(files))]
		f := info.Files[i]
		var off int64
		switch rng.IntN(3) {
		case 0: // around a piece boundary
			p := (f.Offset + rng.Int64N(f.Length)) / info.PieceLength * info.PieceLength
			off = p - f.Offset - rng.Int64N(100)
		case 1: // near the file's start or end
			if rng.IntN(2) == 0 {
				off = rng.Int64N(min(f.Length, 200))
			} else {
				off = f.Length - rng.Int64N(min(f.Length, 70_000)) - 1
			}
		default:
			off = rng.Int64N(f.Length)
		}
		off = max(0, min(off, f.Length-1))
		n := 1 + rng.IntN(100_000)
		buf := make([]byte, n)
		h := handles[i][k%2]
		got, err := h.ReadAt(buf, off)
		want := srcData[i][off:min(off+int64(n), f.Length)]
		if err != nil && !(err.Error() == "EOF" && got == len(want)) {
			t.Fatalf("read %d bytes at %d of %s (direct=%v): %d, %v", n, off, f.RelPath(), k%2 == 1, got, err)
		}
		if !bytes.Equal(buf[:got], want) {
			t.Fatalf("read %d bytes at %d of %s (direct=%v): wrong data", n, off, f.RelPath(), k%2 == 1)
		}
	}
	t.Logf("1000 random reads took %v", time.Since(start))
}

// TestConcurrentReaders runs 8 readers of different files and offsets at once.
func TestConcurrentReaders(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "conc", readFiles, 64<<10, 12, "127.0.0.25", "127.0.0.26")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{HeadTail: fetch.HeadTailHint}, s.peers, s.mi)
	info := &s.mi.Info
	var files []int
	for _, i := range info.VisibleFiles() {
		if info.Files[i].Length > 100_000 {
			files = append(files, i)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 8 {
		wg.Go(func() {
			f := info.Files[files[r%len(files)]]
			want, err := os.ReadFile(s.srcPath(f))
			if err != nil {
				errs <- err
				return
			}
			h, err := os.Open(m.path(f))
			if err != nil {
				errs <- err
				return
			}
			defer h.Close()
			off := f.Length * int64(r) / 9
			buf := make([]byte, 100_000)
			for pos := off; pos < f.Length; pos += int64(len(buf)) {
				n, err := h.ReadAt(buf, pos)
				if err != nil && n != int(min(int64(len(buf)), f.Length-pos)) {
					errs <- fmt.Errorf("reader %d: %s at %d: %v", r, f.RelPath(), pos, err)
					return
				}
				if !bytes.Equal(buf[:n], want[pos:pos+int64(n)]) {
					errs <- fmt.Errorf("reader %d: %s at %d: wrong data", r, f.RelPath(), pos)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRemountFromCache reads part of a torrent, stops every seeder and remounts on the same
// cache: what was read is served from disk; what was not fails after the read timeout.
func TestRemountFromCache(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "remount", readFiles, 64<<10, 13, "127.0.0.27")
	cacheDir := t.TempDir()
	info := &s.mi.Info
	a, e := info.Files[0], info.Files[8] // a.bin and extras/e.bin
	m := mountTorrents(t, cacheDir, fusefs.Options{MaxReadahead: -1}, s.peers, s.mi)
	if fileSHA256(t, m.path(a)) != fileSHA256(t, s.srcPath(a)) {
		t.Fatal("a.bin differs from the source")
	}
	m.close()
	for _, sd := range s.seeders {
		sd.Close()
	}
	m2 := mountTorrents(t, cacheDir, fusefs.Options{MaxReadahead: -1, ReadTimeout: 300 * time.Millisecond}, s.peers, s.mi)
	if fileSHA256(t, m2.path(a)) != fileSHA256(t, s.srcPath(a)) {
		t.Fatal("a.bin from the cache differs from the source")
	}
	h, err := os.Open(m2.path(e))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	_, err = h.ReadAt(make([]byte, 10), e.Length/2)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("read of a piece nobody has, with a read timeout: %v, want EIO", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("read timeout of 300ms took %v", d)
	}
	if st := m2.tors[0].Stats(); st.Downloaded != 0 {
		t.Errorf("remount downloaded %d bytes", st.Downloaded)
	}
}

// TestCopyWithCacheLimit copies a torrent four times the size of a bounded cache: pieces are
// evicted as the copy goes, never while the kernel still splices them, so the copy is exact.
func TestCopyWithCacheLimit(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "bounded", readFiles, 64<<10, 14, "127.0.0.28", "127.0.0.29")
	const limit = 2 << 20
	m := mountWithConfig(t, fetch.Config{CacheLimit: limit}, t.TempDir(), fusefs.Options{HeadTail: fetch.HeadTailHint, MaxReadahead: 512 << 10}, s.peers, s.mi)
	out := t.TempDir()
	if b, err := exec.Command("cp", "-r", filepath.Join(m.dir, "bounded"), out).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v: %s", err, b)
	}
	for _, i := range s.mi.Info.VisibleFiles() {
		f := s.mi.Info.Files[i]
		if fileSHA256(t, s.srcPath(f)) != fileSHA256(t, filepath.Join(append([]string{out}, f.Path...)...)) {
			t.Errorf("%s differs from the source", f.RelPath())
		}
	}
	if v := m.sts[0].VerifiedBytes(); v > limit+2<<20 { // pinned pieces may exceed it briefly
		t.Errorf("cache holds %d bytes with a limit of %d", v, limit)
	} else {
		t.Logf("cache holds %d bytes (limit %d) after copying %d", v, limit, s.mi.Info.Length)
	}
}
