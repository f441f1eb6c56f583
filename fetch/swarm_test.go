package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/torrentfile"
)

// oddFiles has a zero-byte file, a piece that spans three files and a short last piece.
var oddFiles = []testswarm.File{
	{Path: []string{"a.bin"}, Size: 100_000},
	{Path: []string{"empty"}, Size: 0},
	{Path: []string{"sub", "tiny1"}, Size: 5_000},
	{Path: []string{"sub", "tiny2"}, Size: 7_000},
	{Path: []string{"sub", "deeper", "b.bin"}, Size: 300_001},
	{Path: []string{"c.bin"}, Size: 77_777},
}

// makeTorrent writes random files under dir/name and returns a metainfo describing them.
func makeTorrent(t testing.TB, dir, name string, files []testswarm.File, pieceLen int64, seed uint64) *torrentfile.Metainfo {
	t.Helper()
	return testswarm.MakeTorrent(t, dir, name, files, pieceLen, seed)
}

func testLogger(t testing.TB) *slog.Logger { return testswarm.Logger(t) }

// node is one client with one torrent.
type node struct {
	c  *Client
	t  *Torrent
	st *cache.Storage
}

func (n *node) close() {
	n.c.Close()
	n.st.Close()
}

// startSeeder seeds the files under dir from address ip.
func startSeeder(t testing.TB, ip string, mi *torrentfile.Metainfo, dir string) *node {
	t.Helper()
	return runNode(t, Config{ListenAddr: ip + ":0"}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, dir)})
}

// runNode starts a client with cfg (and the test's logger) and adds mi with opts (no
// trackers); the test's cleanup closes both the client and opts.Storage.
func runNode(t testing.TB, cfg Config, mi *torrentfile.Metainfo, opts TorrentOptions) *node {
	t.Helper()
	cfg.Logger = testLogger(t)
	c, err := NewClient(cfg)
	if err != nil {
		opts.Storage.Close()
		t.Fatal(err)
	}
	opts.NoTrackers = true
	tor, err := c.AddTorrent(mi, opts)
	if err != nil {
		c.Close()
		opts.Storage.Close()
		t.Fatal(err)
	}
	n := &node{c, tor, opts.Storage}
	t.Cleanup(n.close)
	return n
}

// startLeecher downloads mi into dir from the given peers.
func startLeecher(t testing.TB, ip string, mi *torrentfile.Metainfo, dir, record string, peers []netip.AddrPort, opts TorrentOptions) *node {
	t.Helper()
	return startLeecherWith(t, Config{ListenAddr: ip + ":0"}, mi, dir, record, peers, opts)
}

// startLeecherWith is startLeecher with the client's configuration.
func startLeecherWith(t testing.TB, cfg Config, mi *torrentfile.Metainfo, dir, record string, peers []netip.AddrPort, opts TorrentOptions) *node {
	t.Helper()
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: dir, RecordPath: record})
	if err != nil {
		t.Fatal(err)
	}
	opts.Storage = st
	opts.Peers = peers
	return runNode(t, cfg, mi, opts)
}

func waitComplete(t testing.TB, n *node, d time.Duration) {
	t.Helper()
	select {
	case <-n.t.Complete():
	case <-time.After(d):
		t.Fatalf("download not complete after %v: %+v", d, n.t.Stats())
	}
}

// waitPeers waits until n peers are connected.
func waitPeers(t testing.TB, n *node, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for n.t.Stats().Peers < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d peers connected, want %d", n.t.Stats().Peers, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fileSHA256(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func sameFiles(t testing.TB, mi *torrentfile.Metainfo, srcDir, dstDir string, only func(int) bool) {
	t.Helper()
	for i, f := range mi.Info.Files {
		if only != nil && !only(i) {
			continue
		}
		src := filepath.Join(append([]string{srcDir}, f.Path...)...)
		dst := filepath.Join(append([]string{dstDir}, f.Path...)...)
		if fileSHA256(t, src) != fileSHA256(t, dst) {
			t.Errorf("%s differs from the source", dst)
		}
	}
}

// downloadFromSeeders seeds mi's files under src from each seeder IP, downloads them at
// leecherIP (connected to every seeder before it wants anything, so that the download spreads
// over them) and checks the files.
func downloadFromSeeders(t *testing.T, mi *torrentfile.Metainfo, src, leecherIP string, seederIPs ...string) *node {
	t.Helper()
	var peers []netip.AddrPort
	for _, ip := range seederIPs {
		peers = append(peers, startSeeder(t, ip, mi, src).c.Addr())
	}
	dst := t.TempDir()
	l := startLeecher(t, leecherIP, mi, dst, filepath.Join(t.TempDir(), "rec"), peers, TorrentOptions{})
	waitPeers(t, l, len(peers))
	l.t.SetBackground(true)
	waitComplete(t, l, 60*time.Second)
	sameFiles(t, mi, src, dst, nil)
	return l
}

func TestSwarmDownloadOddLayout(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "odd", oddFiles, 32<<10, 1)
	l := downloadFromSeeders(t, mi, src, "127.0.0.20", "127.0.0.11", "127.0.0.12", "127.0.0.13")
	s := l.t.Stats()
	if s.PiecesFetched != mi.Info.NumPieces() {
		t.Errorf("fetched %d pieces, want %d", s.PiecesFetched, mi.Info.NumPieces())
	}
	if s.PeersSeen < 2 {
		t.Errorf("used %d peers, want several", s.PeersSeen)
	}
}

func TestSwarmBansCorruptSeeder(t *testing.T) {
	src := t.TempDir()
	files := []testswarm.File{{Path: []string{"data.bin"}, Size: 2 << 20}}
	mi := makeTorrent(t, src, "corrupt", files, 64<<10, 2)
	good := startSeeder(t, "127.0.0.31", mi, src)
	// The bad seeder verified its copy, then the copy rotted: every block it sends is wrong.
	badDir := t.TempDir()
	copyTree(t, filepath.Join(src, "corrupt"), filepath.Join(badDir, "corrupt"))
	bad := startSeeder(t, "127.0.0.32", mi, badDir)
	p := filepath.Join(badDir, "corrupt", "data.bin")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 1000 {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	// The bad seeder alone first, so it surely serves pieces; the good one once it is banned.
	l := startLeecher(t, "127.0.0.33", mi, dst, filepath.Join(t.TempDir(), "rec"),
		[]netip.AddrPort{bad.c.Addr()}, TorrentOptions{Background: true})
	deadline := time.Now().Add(30 * time.Second)
	for l.t.Stats().Banned == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the corrupt seeder was not banned: %+v", l.t.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.t.mu.Lock()
	l.t.addCandidatesLocked([]netip.AddrPort{good.c.Addr()})
	l.t.mu.Unlock()
	waitComplete(t, l, 60*time.Second)
	sameFiles(t, mi, src, dst, nil)
	s := l.t.Stats()
	if s.Banned != 1 {
		t.Errorf("banned %d peers, want 1 (stats %+v)", s.Banned, s)
	}
	if s.HashFailures == 0 {
		t.Errorf("no hash failures seen, the bad seeder was never used")
	}
}

func TestSwarmResumeFetchesNothingTwice(t *testing.T) {
	src := t.TempDir()
	files := []testswarm.File{{Path: []string{"x.bin"}, Size: 3 << 20}, {Path: []string{"y.bin"}, Size: 1<<20 + 3}}
	mi := makeTorrent(t, src, "resume", files, 64<<10, 3)
	seed := startSeeder(t, "127.0.0.41", mi, src)
	dst := t.TempDir()
	rec := filepath.Join(t.TempDir(), "rec")
	l := startLeecher(t, "127.0.0.42", mi, dst, rec, []netip.AddrPort{seed.c.Addr()}, TorrentOptions{Background: true})
	// Stop half-way without a clean close of the storage: the record is whatever was synced.
	deadline := time.Now().Add(30 * time.Second)
	for l.t.Stats().Verified < mi.Info.NumPieces()/2 {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %+v", l.t.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.c.Close()
	first := l.t.Stats().PiecesFetched
	// Reopen from disk as a new process would.
	l2 := startLeecher(t, "127.0.0.43", mi, dst, rec, []netip.AddrPort{seed.c.Addr()}, TorrentOptions{Background: true})
	before := l2.st.VerifiedCount()
	if before < first {
		t.Errorf("resume found %d pieces, the first run verified %d", before, first)
	}
	waitComplete(t, l2, 30*time.Second)
	second := l2.t.Stats().PiecesFetched
	if before+second != mi.Info.NumPieces() {
		t.Errorf("resume: %d on disk + %d fetched != %d pieces", before, second, mi.Info.NumPieces())
	}
	if first+second > mi.Info.NumPieces() {
		t.Errorf("fetched %d+%d pieces of %d: some twice", first, second, mi.Info.NumPieces())
	}
	sameFiles(t, mi, src, dst, nil)
}

func TestSwarmIncludeFetchesOnlyNeededPieces(t *testing.T) {
	src := t.TempDir()
	files := []testswarm.File{{Path: []string{"big1"}, Size: 1 << 20}, {Path: []string{"want"}, Size: 100_000}, {Path: []string{"big2"}, Size: 1 << 20}}
	mi := makeTorrent(t, src, "include", files, 32<<10, 4)
	seed := startSeeder(t, "127.0.0.51", mi, src)
	dst := t.TempDir()
	only := func(i int) bool { return i == 1 }
	l := startLeecher(t, "127.0.0.52", mi, dst, filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{seed.c.Addr()},
		TorrentOptions{Background: true, Include: only})
	waitComplete(t, l, 30*time.Second)
	f := mi.Info.Files[1]
	first, last := mi.Info.PieceRange(f.Offset, f.Length)
	if got := l.t.Stats().PiecesFetched; got != last-first {
		t.Errorf("fetched %d pieces, want exactly the %d under the included file", got, last-first)
	}
	sameFiles(t, mi, src, dst, only)
}

// readerSwarm makes a torrent of files, seeds it from seederIPs and starts a leecher at
// leecherIP that knows the seeders (it reads nothing by itself). It returns the leecher, the
// torrent and the bytes of its first file.
func readerSwarm(t *testing.T, name string, files []testswarm.File, pieceLen int64, seed uint64, leecherIP string, seederIPs ...string) (*node, *torrentfile.Metainfo, []byte) {
	t.Helper()
	src := t.TempDir()
	mi := makeTorrent(t, src, name, files, pieceLen, seed)
	var peers []netip.AddrPort
	for _, ip := range seederIPs {
		peers = append(peers, startSeeder(t, ip, mi, src).c.Addr())
	}
	l := startLeecher(t, leecherIP, mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), peers, TorrentOptions{})
	want, err := os.ReadFile(filepath.Join(append([]string{src, name}, files[0].Path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return l, mi, want
}

func TestReaderFetchesWhatIsRead(t *testing.T) {
	files := []testswarm.File{{Path: []string{"movie.bin"}, Size: 8 << 20}, {Path: []string{"other.bin"}, Size: 2 << 20}}
	l, mi, want := readerSwarm(t, "reader", files, 64<<10, 5, "127.0.0.63", "127.0.0.61", "127.0.0.62")
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(7, 7))
	for range 40 {
		off := rng.Int64N(int64(len(want)))
		n := 1 + rng.IntN(200_000)
		buf := make([]byte, n)
		got, err := r.ReadAt(ctx, buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d, %d): %v\n%s", off, n, err, l.t.debugString())
		}
		if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", off, n)
		}
	}
	// Nothing of the other file was wanted, and far from everything was fetched.
	s := l.t.Stats()
	if s.Verified == s.Pieces {
		t.Errorf("random reads fetched the whole torrent")
	}
	other := mi.Info.Files[1]
	o0, o1 := mi.Info.PieceRange(other.Offset, other.Length)
	for i := o0 + 1; i < o1; i++ { // the first piece may be shared with movie.bin
		if l.st.Verified(i) {
			t.Fatalf("piece %d of an unread file was fetched", i)
		}
	}
}

// TestReaderStreamWastesLittle: a sequential read of a file from healthy seeders (a player, a
// cp from the mount) receives almost no block twice. Blocks under a blocked read and readahead
// blocks are asked of a second peer only once their first request is late; asking at once
// threw away a fifth of everything received (17-22% here), and the seeders' upload with it.
func TestReaderStreamWastesLittle(t *testing.T) {
	files := []testswarm.File{{Path: []string{"movie.bin"}, Size: 24 << 20}}
	const seeders = 3
	l, _, want := readerSwarm(t, "stream", files, 256<<10, 9, "127.0.0.74", "127.0.0.71", "127.0.0.72", "127.0.0.73")
	waitPeers(t, l, seeders)
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	buf := make([]byte, 128<<10)
	for off := int64(0); off < int64(len(want)); off += int64(len(buf)) {
		n, err := r.ReadAt(ctx, buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d): %v\n%s", off, err, l.t.debugString())
		}
		if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d): wrong bytes", off)
		}
	}
	st := l.t.Stats()
	t.Logf("streamed %d MiB from %d seeders: %d bytes received twice", len(want)>>20, seeders, st.Wasted)
	if st.Wasted > int64(len(want))/10 {
		t.Errorf("a sequential read from healthy seeders wasted %d of %d bytes (over 10%%)", st.Wasted, len(want))
	}
}

func TestReaderWaitHonoursContext(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "lonely", []testswarm.File{{Path: []string{"f"}, Size: 100_000}}, 32<<10, 6)
	l := startLeecher(t, "127.0.0.64", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), nil, TorrentOptions{})
	r, err := l.t.NewReader(0, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = r.ReadAt(ctx, make([]byte, 10), 50_000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadAt with no peers: %v, want a deadline error", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("cancelled read took %v", time.Since(start))
	}
	if s := l.t.Stats(); s.WaitingReads != 0 {
		t.Errorf("%d reads still counted as waiting", s.WaitingReads)
	}
}

func copyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStreamStartGetsSecondPeerSooner checks when the pieces of the oldest blocked read get a
// second peer after oldestReadLateAfter: for a read that starts a stream (the first read, a
// seek), not for one inside a sequential stream, where waiting is normal and asking twice
// wastes bandwidth.
func TestStreamStartGetsSecondPeerSooner(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "stream-wait", []testswarm.File{{Path: []string{"f"}, Size: 8 << 20}}, 64<<10, 6)
	l := startLeecher(t, "127.0.0.65", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), nil, TorrentOptions{})
	r, err := l.t.NewReader(0, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// soonerAt starts a read at off that waits (no peers) and returns whether the picker gives
	// its piece the sooner second peer once the read is waiting; the read is then cancelled.
	soonerAt := func(off int64) bool {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = r.ReadAt(ctx, make([]byte, 4096), off)
		}()
		defer func() { cancel(); <-done }()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			l.t.mu.Lock()
			waiting, sooner := r.waitingReads > 0, l.t.pt.streamStart(int(off/mi.Info.PieceLength))
			l.t.mu.Unlock()
			if waiting {
				return sooner
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("the read at %d never waited", off)
		return false
	}
	if !soonerAt(0) {
		t.Error("the first read of a file does not get the sooner second peer")
	}
	// Sequential reads grow the window (bookkeeping only: these bytes are never fetched).
	l.t.mu.Lock()
	for off := int64(4096); off < 1<<20; off += 128 << 10 {
		r.ra.advance(off, 128<<10)
	}
	next := r.ra.next
	l.t.mu.Unlock()
	if soonerAt(next) {
		t.Error("a read inside a sequential stream gets the sooner second peer")
	}
	if !soonerAt(6 << 20) {
		t.Error("a read after a seek does not get the sooner second peer")
	}
}

// TestSwarmHashesAhead: a download from several seeders hashes most of every piece while its
// blocks arrive (in order from memory, or read back when they came ahead of their turn), so
// that the verifier has little left when the last block lands; the files are still exact, and
// no piece fails its hash.
func TestSwarmHashesAhead(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "ahead", []testswarm.File{{Path: []string{"f"}, Size: 24 << 20}}, 1<<20, 9)
	l := downloadFromSeeders(t, mi, src, "127.0.0.44", "127.0.0.41", "127.0.0.42", "127.0.0.43")
	l.t.mu.Lock()
	ahead := l.t.hashedAhead
	l.t.mu.Unlock()
	if ahead < mi.Info.Length/2 {
		t.Errorf("%d of %d bytes were hashed ahead, want at least half", ahead, mi.Info.Length)
	}
	// Blocks that arrive together are written and hashed as one run (storeRun): a run hashed
	// out of turn would fail its piece.
	if s := l.t.Stats(); s.HashFailures != 0 {
		t.Errorf("%d hash failures from honest seeders", s.HashFailures)
	}
}

// TestBlockedReadPreemptsReadahead: a seeder capped at 256 KiB/s holds a full pipeline of
// readahead requests when a read far ahead blocks: the newest readahead requests are cancelled
// to make room, and the far read is served before the readahead it jumped.
func TestBlockedReadPreemptsReadahead(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "preempt", []testswarm.File{{Path: []string{"f"}, Size: 16 << 20}}, 64<<10, 12)
	seeder := runNode(t, Config{ListenAddr: "127.0.0.47:0", MaxUploadRate: 256 << 10}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
	l := startLeecher(t, "127.0.0.48", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{seeder.c.Addr()}, TorrentOptions{})
	waitPeers(t, l, 1)
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := r.ReadAt(ctx, make([]byte, 1), 0); err != nil { // opens a 1 MiB window: 16 pieces
		t.Fatal(err)
	}
	// The pipeline (32 blocks) is full of readahead now; a read at 12 MiB blocks.
	far := int64(12 << 20)
	if _, err := r.ReadAt(ctx, make([]byte, 1), far); err != nil {
		t.Fatal(err)
	}
	l.t.mu.Lock()
	preempted := l.t.preempted
	l.t.mu.Unlock()
	if preempted == 0 {
		t.Fatal("no readahead request was cancelled for the blocked read")
	}
	missing := 0
	for i := 1; i <= 16; i++ {
		if !l.st.Verified(i) {
			missing++
		}
	}
	if missing == 0 {
		t.Errorf("every readahead piece came before the far read (%d requests preempted)", preempted)
	}
	t.Logf("%d readahead requests preempted; %d of the window's 16 pieces still missing when the far read returned", preempted, missing)
}
