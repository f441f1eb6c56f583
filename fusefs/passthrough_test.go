package fusefs_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// requirePassthrough skips (never in CI) when the kernel or our privileges rule out FUSE
// passthrough on m.
func requirePassthrough(t *testing.T, m *mounted) {
	t.Helper()
	if m.fs.Counters().Passthrough {
		return
	}
	if testenv.InCI() {
		t.Fatal("FUSE passthrough is unavailable in CI (root and Linux 6.9+ are expected)")
	}
	t.Skip("skipping: reason: FUSE passthrough needs root and Linux 6.9+")
}

// readDirect reads n bytes at off (both multiples of 4096) with O_DIRECT into an aligned buffer.
func readDirect(t *testing.T, path string, off int64, n int) ([]byte, error) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	got, err := f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return bytes.Clone(buf[:got]), nil
}

// openPassthrough opens path, retrying for a while until the open is passthrough: closing is
// asynchronous in FUSE, so a file's last ordinary or O_DIRECT handle may still be counted for
// a moment after close returns, and a retry's own ordinary handle counts too.
func openPassthrough(t *testing.T, m *mounted, path string) *os.File {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		before := m.fs.Counters().PassthroughOpens
		h, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if m.fs.Counters().PassthroughOpens == before+1 {
			return h
		}
		h.Close()
		if time.Now().After(deadline) {
			t.Fatalf("open of complete file %s: not passthrough after 5 s", path)
		}
		time.Sleep(20 * time.Millisecond) // for the release of the handle just closed
	}
}

// TestPassthrough: a file whose every byte is verified when it is opened is read by the kernel
// from the cache file itself (no read reaches gotfs); an O_DIRECT open made while it is open is
// passthrough too (the kernel refuses a mix) and reads aligned ranges; a file opened before it
// was complete keeps every later open on the read path while that handle lives.
func TestPassthrough(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "pass", readFiles, 64<<10, 13, "127.0.0.37", "127.0.0.38")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, s.peers, s.mi)
	requirePassthrough(t, m)
	info := &s.mi.Info
	file := func(name string) torrentfile.File {
		for _, f := range info.Files {
			if f.Path[len(f.Path)-1] == name {
				return f
			}
		}
		t.Fatalf("no file %s", name)
		return torrentfile.File{}
	}
	src := func(f torrentfile.File) []byte {
		b, err := os.ReadFile(s.srcPath(f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// 1. Fetch d.bin with O_DIRECT reads: every piece is verified, and the kernel's page cache of
	// the mounted file stays empty, so any later read the kernel does not pass through to the
	// cache file would reach gotfs.
	d := file("d.bin")
	want := src(d)
	for off := int64(0); off < d.Length; off += 1 << 20 {
		got, err := readDirect(t, m.path(d), off, 1<<20)
		if err != nil {
			t.Fatalf("O_DIRECT read at %d: %v", off, err)
		}
		if !bytes.Equal(got, want[off:off+int64(len(got))]) {
			t.Fatalf("O_DIRECT read at %d: wrong bytes", off)
		}
	}

	// 2. A buffered open now is passthrough: the whole file reads right, and no read reaches us.
	h := openPassthrough(t, m, m.path(d))
	defer h.Close()
	before := m.fs.Counters()
	before.PassthroughOpens--
	got, err := io.ReadAll(h)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("passthrough read of %s: %d bytes, %v (want %d bytes, equal)", d.RelPath(), len(got), err, len(want))
	}
	after := m.fs.Counters()
	if after.Reads != before.Reads {
		t.Errorf("%d reads reached gotfs through a passthrough open", after.Reads-before.Reads)
	}

	// 3. While it is open, an O_DIRECT open works (the kernel demands passthrough for it too)
	// and reads aligned ranges; so does a second buffered open.
	got, err = readDirect(t, m.path(d), 4096, 64<<10)
	if err != nil {
		t.Fatalf("O_DIRECT open while a passthrough handle is open: %v", err)
	}
	if !bytes.Equal(got, want[4096:4096+64<<10]) {
		t.Fatal("O_DIRECT read through passthrough: wrong bytes")
	}
	h2, err := os.Open(m.path(d))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := h2.ReadAt(buf, 12345); err != nil || !bytes.Equal(buf, want[12345:13345]) {
		t.Fatalf("second passthrough open: %v or wrong bytes", err)
	}
	h2.Close()
	if c := m.fs.Counters(); c.PassthroughOpens != before.PassthroughOpens+3 {
		t.Errorf("%d passthrough opens, want %d", c.PassthroughOpens, before.PassthroughOpens+3)
	}
	h.Close()

	// 4. c.bin is opened before it is complete: that handle reads it all through gotfs; a
	// second open while the first lives stays on the read path (the kernel refuses a mix);
	// once both are closed, a new open is passthrough.
	c := file("c.bin")
	want = src(c)
	h1, err := os.Open(m.path(c))
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	if got, err := io.ReadAll(h1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read of %s: %v or wrong bytes", c.RelPath(), err)
	}
	before = m.fs.Counters()
	h2, err = os.Open(m.path(c))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(h2); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("second open of %s: %v or wrong bytes", c.RelPath(), err)
	}
	h2.Close()
	if c := m.fs.Counters(); c.PassthroughOpens != before.PassthroughOpens {
		t.Errorf("an open beside an ordinary one was made passthrough")
	}
	h1.Close()
	h3 := openPassthrough(t, m, m.path(c))
	defer h3.Close()
	if _, err := h3.ReadAt(buf, 777); err != nil || !bytes.Equal(buf, want[777:1777]) {
		t.Fatalf("reopen of %s: %v or wrong bytes", c.RelPath(), err)
	}
}

// TestNoPassthrough: with NoPassthrough, or for a file larger than PassthroughMaxSize, every
// read of a verified file still comes to gotfs and is answered from the cache file.
func TestNoPassthrough(t *testing.T) {
	testenv.RequireFUSE(t)
	size := int64(readFiles[0].Size)
	for _, opts := range []fusefs.Options{{NoPassthrough: true}, {PassthroughMaxSize: size - 1}} {
		s := newSwarm(t, "nopass", readFiles[:1], 64<<10, 14, "127.0.0.39")
		m := mountTorrents(t, t.TempDir(), opts, s.peers, s.mi)
		f := s.mi.Info.Files[0]
		want, err := os.ReadFile(s.srcPath(f))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := os.ReadFile(m.path(f))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%+v: read: %v or wrong bytes", opts, err)
			}
		}
		c := m.fs.Counters()
		if c.PassthroughOpens != 0 || c.Reads == 0 || (opts.NoPassthrough && c.Passthrough) {
			t.Errorf("%+v: counters %+v", opts, c)
		}
		m.close()
	}
}

// TestPassthroughMixedOpens: many buffered and O_DIRECT opens of a complete file, overlapping
// in every order, all succeed and read the right bytes. (go-fuse drops a reference to the
// passthrough backing on every release: an ordinary handle closed just after a passthrough
// open once unregistered the backing under it, and the next open failed with EIO.)
func TestPassthroughMixedOpens(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "mixed", readFiles[:1], 64<<10, 15, "127.0.0.40")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, s.peers, s.mi)
	f := s.mi.Info.Files[0]
	want, err := os.ReadFile(s.srcPath(f))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(m.path(f)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first read: %v or wrong bytes", err)
	}
	errs := make(chan error, 8)
	for round := range 4 {
		// A passthrough handle, closed at some point while the others open and close.
		holder := openPassthrough(t, m, m.path(f))
		var wg sync.WaitGroup
		wg.Go(func() {
			time.Sleep(time.Duration(50+100*round) * time.Millisecond)
			holder.Close()
		})
		for g := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), uint64(round)))
				for k := range 12 {
					off := rng.Int64N(int64(len(want))-(64<<10)) &^ 4095
					var got []byte
					var err error
					if rng.IntN(2) == 0 {
						got, err = readDirect(t, m.path(f), off, 64<<10)
					} else {
						var h *os.File
						if h, err = os.Open(m.path(f)); err == nil {
							got = make([]byte, 64<<10)
							var n int
							n, err = h.ReadAt(got, off)
							got = got[:n]
							time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
							h.Close()
						}
					}
					if err != nil {
						errs <- fmt.Errorf("round %d, reader %d, open %d at %d: %w", round, g, k, off, err)
						return
					}
					if len(got) != 64<<10 || !bytes.Equal(got, want[off:off+int64(len(got))]) {
						errs <- fmt.Errorf("round %d, reader %d, open %d at %d: wrong bytes", round, g, k, off)
						return
					}
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := m.fs.Counters()
	if c.PassthroughOpens < 8 {
		t.Errorf("only %d passthrough opens: the mix was not exercised", c.PassthroughOpens)
	}
	t.Logf("counters after mixed opens: %+v", m.fs.Counters())
}

// TestPassthroughReleaseRace (issue 12): the release of an ordinary handle must not touch the
// passthrough backing of a handle opened while that release was under way. go-fuse, when it
// counted backing references, dropped one for every released handle after fusefs's Release
// had returned, ordinary handles included: that unregistered the backing under the new
// passthrough handle, and the next open of the file failed with EIO. Phase 1 holds each
// ordinary handle's release right after fusefs counted it, makes the passthrough open, lets
// the release finish and opens again; phase 2 races the close against the open unaided.
func TestPassthroughReleaseRace(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "relrace", readFiles[:1], 64<<10, 16, "127.0.0.41")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, s.peers, s.mi)
	requirePassthrough(t, m)
	f := s.mi.Info.Files[0]
	path := m.path(f)
	want, err := os.ReadFile(s.srcPath(f))
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan bool, 64) // one value per release: whether it was passthrough
	proceed := make(chan struct{}, 1)
	var hold atomic.Bool
	m.fs.SetTestHookReleased(func(pass bool) {
		// Whether to hold is read before the release is reported: once reported, the test
		// may clear hold at any moment, and a hold read later would miss the proceed meant
		// for it (two such misses in a row filled proceed and hung the test under load).
		held := !pass && hold.Load()
		select {
		case released <- pass:
		default: // never in a passing run; a missing value fails waitReleases
		}
		if held {
			select {
			case <-proceed:
			case <-time.After(10 * time.Second):
			}
		}
	})
	// Handles still open when a check fails are closed before the unmount (a process that
	// exits with a file open on its own stopped mount hangs in the kernel's flush).
	var live []*os.File
	track := func(h *os.File) *os.File {
		live = append(live, h)
		return h
	}
	t.Cleanup(func() {
		hold.Store(false)
		select {
		case proceed <- struct{}{}:
		default:
		}
		for _, h := range live {
			h.Close()
		}
	})
	// waitReleases waits for n releases and returns how many were passthrough.
	waitReleases := func(n int) int {
		t.Helper()
		pass := 0
		for range n {
			select {
			case p := <-released:
				if p {
					pass++
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a closed handle was not released within 10 s")
			}
		}
		return pass
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first read: %v or wrong bytes", err)
	}
	waitReleases(1)
	rng := rand.New(rand.NewPCG(16, 12))
	check := func(what string, h *os.File) {
		t.Helper()
		buf := make([]byte, 4096)
		off := rng.Int64N(int64(len(want) - len(buf)))
		if _, err := h.ReadAt(buf, off); err != nil || !bytes.Equal(buf, want[off:off+int64(len(buf))]) {
			t.Fatalf("%s: read at %d: %v or wrong bytes", what, off, err)
		}
	}
	openDirect := func() *os.File {
		t.Helper()
		h, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		return track(h)
	}
	open := func() (*os.File, error) {
		h, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return track(h), nil
	}

	// Phase 1: a deterministic interleaving, with the ordinary handle's release held open.
	for round := range 50 {
		// No handle is open: an O_DIRECT open is ordinary (it never starts passthrough mode).
		a := openDirect()
		hold.Store(true)
		a.Close()
		if waitReleases(1) != 0 {
			t.Fatalf("round %d: the O_DIRECT open was passthrough", round)
		}
		before := m.fs.Counters().PassthroughOpens
		b, err := open()
		if err != nil {
			t.Fatalf("round %d: open beside a release under way: %v", round, err)
		}
		if m.fs.Counters().PassthroughOpens != before+1 {
			t.Fatalf("round %d: an open after the ordinary handle's release was not passthrough", round)
		}
		hold.Store(false)
		select {
		case proceed <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the held release never took its proceed", round)
		}
		time.Sleep(2 * time.Millisecond) // go-fuse ends the release
		c, err := open()
		if err != nil {
			t.Fatalf("round %d: open after the ordinary handle's release ended: %v", round, err)
		}
		check(fmt.Sprintf("round %d, second passthrough handle", round), c)
		check(fmt.Sprintf("round %d, first passthrough handle", round), b)
		c.Close()
		b.Close()
		live = live[:0]
		if p := waitReleases(2); p != 2 {
			t.Fatalf("round %d: %d of 2 handles were passthrough", round, p)
		}
	}

	// Phase 2: the close of the ordinary handle and the next open race on their own.
	raced := 0
	for round := range 300 {
		a := openDirect()
		before := m.fs.Counters().PassthroughOpens
		var wg sync.WaitGroup
		wg.Go(func() { a.Close() })
		// The release reaches fusefs some tens of microseconds after close starts.
		time.Sleep(time.Duration(rng.IntN(150)) * time.Microsecond)
		b, err := open()
		wg.Wait()
		if err != nil {
			t.Fatalf("race round %d: open: %v", round, err)
		}
		if m.fs.Counters().PassthroughOpens > before {
			raced++
		}
		c, err := open()
		if err != nil {
			t.Fatalf("race round %d: second open: %v", round, err)
		}
		check(fmt.Sprintf("race round %d, second handle", round), c)
		check(fmt.Sprintf("race round %d, first handle", round), b)
		c.Close()
		b.Close()
		live = live[:0]
		waitReleases(3)
	}
	t.Logf("phase 2: the open made while the O_DIRECT handle closed was passthrough in %d of 300 rounds", raced)
}
