package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

// Regression tests of races between the engine's goroutines, each driven into the bad
// interleaving deterministically (test hooks, or a peer that stops halfway in its handshake).

// evictFixture is a client with one torrent whose pieces are all verified on disk and no peer.
type evictFixture struct {
	c        *Client
	tor      *Torrent
	st       *cache.Storage
	want     []byte // the torrent's bytes (one file)
	pieceLen int64
	pieces   int
}

func newEvictFixture(t *testing.T, ip string, readOnly bool) *evictFixture {
	t.Helper()
	const pieceLen = 16 << 10
	const pieces = 8
	src := t.TempDir()
	mi := makeTorrent(t, src, "pins", []testswarm.File{{Path: []string{"f.bin"}, Size: pieces * pieceLen}}, pieceLen, 21)
	dir := src
	if !readOnly {
		dir = t.TempDir()
		copyTree(t, src, dir)
	}
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: dir, RecordPath: filepath.Join(t.TempDir(), "rec"), ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if st.VerifiedCount() != pieces {
		t.Fatalf("storage has %d of %d pieces verified", st.VerifiedCount(), pieces)
	}
	c, err := NewClient(Config{ListenAddr: ip + ":0", CacheLimit: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tor, err := c.AddTorrent(mi, TorrentOptions{Storage: st, NoTrackers: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(src, "pins", "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return &evictFixture{c: c, tor: tor, st: st, want: want, pieceLen: pieceLen, pieces: pieces}
}

// checkPiece checks that piece i is verified and that the storage holds its bytes.
func (f *evictFixture) checkPiece(t *testing.T, i int) {
	t.Helper()
	if !f.st.Verified(i) {
		t.Errorf("piece %d was evicted", i)
	}
	off := int64(i) * f.pieceLen
	buf := make([]byte, f.pieceLen)
	if _, err := f.st.ReadAt(buf, off); err != nil {
		t.Fatalf("read piece %d: %v", i, err)
	}
	if !bytes.Equal(buf, f.want[off:off+f.pieceLen]) {
		t.Errorf("piece %d: the bytes read are not the piece's (zeros from a punched hole?)", i)
	}
}

// TestEvictSparesPieceProtectedAfterPick: evictOnce picks its candidates under t.mu, lets it
// go and evicts later. A read that pins a picked piece in between (WaitPinned returns at once
// for a verified piece) or a reader that starts protecting it must keep it: evicting it would
// serve the zeros of a punched hole.
func TestEvictSparesPieceProtectedAfterPick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("pinned", func(t *testing.T) {
		f := newEvictFixture(t, "127.0.0.221", false)
		r, err := f.tor.NewReader(0, ReaderOptions{MaxReadahead: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		const k = 3
		release := func() {}
		f.c.testHookEvictPicked = func() {
			var err error
			release, err = r.WaitPinned(ctx, k*f.pieceLen, f.pieceLen)
			if err != nil {
				t.Errorf("pin piece %d: %v", k, err)
			}
		}
		if !f.c.evictOnce(1) {
			t.Fatal("evictOnce evicted nothing")
		}
		// The read copies its bytes now, while pinned.
		f.checkPiece(t, k)
		release()
		if s := f.tor.Stats(); s.Evicted != f.pieces-1 {
			t.Errorf("%d pieces evicted, want every piece but the pinned one (%d)", s.Evicted, f.pieces-1)
		}
	})

	t.Run("hinted", func(t *testing.T) {
		f := newEvictFixture(t, "127.0.0.222", false)
		// A file opened after the pick: its head and tail pieces are protected from then on.
		f.c.testHookEvictPicked = func() {
			r, err := f.tor.NewReader(0, ReaderOptions{MaxReadahead: -1, HeadTail: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
		}
		if !f.c.evictOnce(1) {
			t.Fatal("evictOnce evicted nothing")
		}
		f.checkPiece(t, 0)
		f.checkPiece(t, f.pieces-1)
		if s := f.tor.Stats(); s.Evicted != f.pieces-2 {
			t.Errorf("%d pieces evicted, want every piece but the head and the tail (%d)", s.Evicted, f.pieces-2)
		}
	})
}

// TestEvictFailureReleasesWaiters: a read that comes while its piece is being evicted waits
// (the piece is no longer verified); when the eviction fails and the piece is verified again,
// the read must go on instead of waiting for a fetch that never comes.
func TestEvictFailureReleasesWaiters(t *testing.T) {
	// A read-only storage refuses to evict: the pieces stay verified.
	f := newEvictFixture(t, "127.0.0.223", true)
	r, err := f.tor.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const k = 5
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type result struct {
		release func()
		err     error
	}
	done := make(chan result, 1)
	f.c.testHookEvicting = func(tor *Torrent, pieces []int) {
		go func() {
			release, err := r.WaitPinned(ctx, k*f.pieceLen, f.pieceLen)
			done <- result{release, err}
		}()
		waitUntil(t, 5*time.Second, "the read to wait for the piece being evicted", func() bool {
			tor.mu.Lock()
			defer tor.mu.Unlock()
			return tor.waiters[k] != nil
		})
		select {
		case res := <-done:
			t.Errorf("a read of a piece being evicted returned at once (err %v)", res.err)
			done <- res
		default:
		}
	}
	f.tor.evict([]int{k})
	res := <-done
	defer res.release()
	if res.err != nil {
		t.Fatalf("read of piece %d after a failed eviction: %v", k, res.err)
	}
	f.checkPiece(t, k)
}

// TestEvictedPieceWaitedForIsFetchedAgain: a read that began to wait for a piece while it was
// being evicted gets it from a peer once the eviction is over. While the piece was busy the
// peers could not be given it, so they must be woken when it is free again.
func TestEvictedPieceWaitedForIsFetchedAgain(t *testing.T) {
	files := []testswarm.File{{Path: []string{"f.bin"}, Size: 1 << 20}}
	const pieceLen = 64 << 10
	l, _, want := readerSwarm(t, "refetch", files, pieceLen, 23, "127.0.0.224", "127.0.0.225")
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	buf := make([]byte, 2*pieceLen)
	if _, err := r.ReadAt(ctx, buf, 0); err != nil {
		t.Fatal(err)
	}
	const k = 1
	done := make(chan error, 1)
	l.c.testHookEvicting = func(tor *Torrent, pieces []int) {
		go func() {
			_, err := r.ReadAt(ctx, buf[:pieceLen], k*pieceLen)
			done <- err
		}()
		waitUntil(t, 5*time.Second, "the read to wait for the piece being evicted", func() bool {
			tor.mu.Lock()
			defer tor.mu.Unlock()
			return tor.waiters[k] != nil
		})
		// Let the peer's writer look for work (and find none: the piece is busy) before the
		// eviction ends.
		time.Sleep(100 * time.Millisecond)
	}
	l.t.evict([]int{k})
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read of the evicted piece: %v", err)
		}
	case <-waitCtx.Done():
		t.Fatalf("read of the evicted piece %d still waits after 10 s:\n%s", k, l.t.debugString())
	}
	if !bytes.Equal(buf[:pieceLen], want[k*pieceLen:(k+1)*pieceLen]) {
		t.Error("the evicted piece read again has the wrong bytes")
	}
	if s := l.t.Stats(); s.Evicted != 1 {
		t.Errorf("%d pieces evicted, want 1", s.Evicted)
	}
}

// halfHandshake dials the client for infoHash and stops after the client answered: the
// client has looked the torrent up and waits for our peer id.
func halfHandshake(t *testing.T, to netip.AddrPort, infoHash torrentfile.Hash) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", to.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	ours := p2p.AppendHandshake(nil, p2p.Handshake{InfoHash: infoHash, PeerID: hostilePeerID()})
	if _, err := nc.Write(ours[:p2p.HandshakeLen-20]); err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(nc, make([]byte, p2p.HandshakeLen)); err != nil {
		t.Fatalf("the client did not answer the handshake: %v", err)
	}
	return nc
}

// waitClosedByPeer waits until the other end closes nc, reading (and dropping) what it sends.
func waitClosedByPeer(t *testing.T, nc net.Conn, d time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the client kept the connection open %v", d)
	}
}

// TestIncomingHandshakeWhileClosing: a peer's handshake that began while the torrent accepted
// peers and ends after it closed must be refused cleanly (it crashed the process: the peer
// went to a metadata fetch that did not exist).
func TestIncomingHandshakeWhileClosing(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "closing", []testswarm.File{{Path: []string{"f.bin"}, Size: 100_000}}, 16<<10, 22)

	t.Run("torrent", func(t *testing.T) {
		n := startSeeder(t, "127.0.0.226", mi, src)
		nc := halfHandshake(t, n.c.Addr(), mi.InfoHash)
		if err := n.t.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(make([]byte, 20)); err != nil {
			t.Fatal(err)
		}
		waitClosedByPeer(t, nc, 10*time.Second)
		// The client still closes cleanly.
		if err := n.c.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("client", func(t *testing.T) {
		n := startSeeder(t, "127.0.0.227", mi, src)
		nc := halfHandshake(t, n.c.Addr(), mi.InfoHash)
		closed := make(chan error, 1)
		go func() { closed <- n.c.Close() }()
		// Finish the handshake once the client cut it short or closed the torrent.
		waitUntil(t, 10*time.Second, "the client to close the connection or the torrent", func() bool {
			if !n.t.acceptsIncoming() {
				return true
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			_, err := nc.Read(make([]byte, 1))
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		})
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(make([]byte, 20)) // fails when the client closed the connection
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Client.Close still runs after 30 s")
		}
		waitClosedByPeer(t, nc, 10*time.Second)
	})
}

// TestClientCloseCutsHandshakes: Client.Close does not wait for a peer that connected and
// sends nothing (the handshake timeout is 20 s).
func TestClientCloseCutsHandshakes(t *testing.T) {
	c, err := NewClient(Config{ListenAddr: "127.0.0.228:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", c.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte{19}); err != nil { // the start of a handshake, and no more
		t.Fatal(err)
	}
	// Accepting on the loopback takes far less. (Were it not accepted yet, Close would reset
	// the connection in the listener's queue: the test would pass without testing much.)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Client.Close took %v with a handshake under way", d)
	}
	waitClosedByPeer(t, nc, 5*time.Second)
}

// TestTorrentCloseConcurrent: Torrent.Close may be called from several goroutines at once (a
// user's Close and Client.Close); each call returns once the torrent is closed, with the same
// result.
func TestTorrentCloseConcurrent(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "close", []testswarm.File{{Path: []string{"f.bin"}, Size: 100_000}}, 16<<10, 24)
	c, err := NewClient(Config{ListenAddr: "127.0.0.229:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const rounds = 20
	const callers = 16
	for round := range rounds {
		st, err := cache.Open(&mi.Info, cache.Options{DataDir: src, RecordPath: filepath.Join(t.TempDir(), "rec"), ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		tor, err := c.AddTorrent(mi, TorrentOptions{Storage: st, NoTrackers: true})
		if err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			// Saving the record fails on a closed storage: every caller must see that error.
			st.Close()
		}
		start := make(chan struct{})
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				errs[i] = tor.Close()
				c.mu.Lock()
				_, still := c.torrents[mi.InfoHash]
				c.mu.Unlock()
				if still {
					t.Errorf("round %d: Torrent.Close returned before the torrent was closed", round)
				}
			})
		}
		close(start)
		wg.Wait()
		st.Close()
		for i, err := range errs {
			if (err == nil) != (round%2 == 0) || err != errs[0] {
				t.Fatalf("round %d: Close call %d returned %v, call 0 %v", round, i, err, errs[0])
			}
		}
		if err := tor.Close(); err != errs[0] {
			t.Fatalf("round %d: a later Close returned %v, the first ones %v", round, err, errs[0])
		}
		if v := c.verifiedBytes.Load(); v != 0 {
			t.Fatalf("round %d: %d verified bytes counted after the torrent closed", round, v)
		}
	}
}

// TestUploadPinsItsPieces: a block queued for upload is pinned from the moment the writer
// takes it until it is sent, so an eviction meanwhile keeps its piece (it would upload the
// zeros of a punched hole); a queued request whose piece was evicted before the writer took
// it is rejected, not an error that drops the peer.
func TestUploadPinsItsPieces(t *testing.T) {
	f := newEvictFixture(t, "127.0.0.223", false)
	p := &peer{t: f.tor, wakeCh: make(chan struct{}, 1), fast: fastState{enabled: true}}
	const kept, gone = 2, 5
	tor := f.tor
	tor.mu.Lock()
	p.uploads = []blockReq{{piece: kept, begin: 0, length: 1 << 10}, {piece: gone, begin: 0, length: 1 << 10}}
	f.st.Unverify(gone) // as if evicted after the request was queued
	_, ups := p.prepareLocked(nil, nil)
	if _, err := f.st.VerifyPiece(gone, nil); err != nil {
		t.Fatal(err)
	}
	tor.mu.Unlock()
	if len(ups) != 1 || ups[0].piece != kept {
		t.Fatalf("uploads taken %+v, want only piece %d's block", ups, kept)
	}
	// While the block is in the writer's hands, eviction spares its piece.
	if !f.c.evictOnce(1) {
		t.Fatal("evictOnce evicted nothing")
	}
	f.checkPiece(t, kept)
	tor.mu.Lock()
	tor.unpinUploadsLocked(ups)
	pinned := tor.pt.pins[kept]
	tor.mu.Unlock()
	if pinned != 0 {
		t.Errorf("piece %d still pinned %d times after the upload", kept, pinned)
	}
	if s := tor.Stats(); s.Evicted != f.pieces-1 {
		t.Errorf("%d pieces evicted, want all but the one being uploaded (%d)", s.Evicted, f.pieces-1)
	}
}
