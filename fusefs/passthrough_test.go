package fusefs_test

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"

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

// TestPassthrough: a file whose every byte is verified when it is opened is read by the kernel
// from the cache file itself (no read reaches gotfs); an O_DIRECT open made while it is open is
// passthrough too (the kernel refuses a mix) and reads aligned ranges; a file opened before it
// was complete keeps every later open on the read path while that handle lives.
func TestPassthrough(t *testing.T) {
	requireFUSE(t)
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
	before := m.fs.Counters()
	h, err := os.Open(m.path(d))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got, err := io.ReadAll(h)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("passthrough read of %s: %d bytes, %v (want %d bytes, equal)", d.RelPath(), len(got), err, len(want))
	}
	after := m.fs.Counters()
	if after.PassthroughOpens != before.PassthroughOpens+1 {
		t.Errorf("open of a verified file: %d passthrough opens, want %d", after.PassthroughOpens, before.PassthroughOpens+1)
	}
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
	h3, err := os.Open(m.path(c))
	if err != nil {
		t.Fatal(err)
	}
	defer h3.Close()
	if _, err := h3.ReadAt(buf, 777); err != nil || !bytes.Equal(buf, want[777:1777]) {
		t.Fatalf("reopen of %s: %v or wrong bytes", c.RelPath(), err)
	}
	if c := m.fs.Counters(); c.PassthroughOpens != before.PassthroughOpens+1 {
		t.Errorf("reopen of a complete file after every handle closed: %d passthrough opens, want %d", c.PassthroughOpens, before.PassthroughOpens+1)
	}
}

// TestNoPassthrough: with NoPassthrough every read of a verified file still comes to gotfs
// and is answered from the cache file.
func TestNoPassthrough(t *testing.T) {
	requireFUSE(t)
	s := newSwarm(t, "nopass", readFiles[:1], 64<<10, 14, "127.0.0.39")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{NoPassthrough: true}, s.peers, s.mi)
	f := s.mi.Info.Files[0]
	want, err := os.ReadFile(s.srcPath(f))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := os.ReadFile(m.path(f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read: %v or wrong bytes", err)
		}
	}
	if c := m.fs.Counters(); c.Passthrough || c.PassthroughOpens != 0 || c.Reads == 0 {
		t.Errorf("NoPassthrough: counters %+v", c)
	}
}
