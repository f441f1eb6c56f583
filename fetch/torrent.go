package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

// ErrClosed is returned by reads and waits on a torrent that was closed.
var ErrClosed = errors.New("torrent closed")

// TorrentOptions says what to do with one torrent.
type TorrentOptions struct {
	// Storage holds the torrent's bytes; it must be open for the torrent's Info.
	Storage *cache.Storage
	// Peers are contacted besides those the trackers return.
	Peers []netip.AddrPort
	// NoTrackers skips the torrent's trackers (peers come from Peers only).
	NoTrackers bool
	// Background fetches every wanted piece at normal priority (a download); when false only what
	// readers ask for is fetched (a mount without --prefetch).
	Background bool
	// Include selects the files whose pieces are wanted; nil means every file.
	Include func(fileIndex int) bool
}

// Torrent is one torrent being fetched and served.
type Torrent struct {
	c     *Client
	hash  torrentfile.Hash
	mi    *torrentfile.Metainfo
	info  *torrentfile.Info
	store *cache.Storage
	opts  TorrentOptions
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}

	closeOnce sync.Once // Close runs once; later and concurrent calls return its result
	closeErr  error

	verifyq chan verifyJob

	// mu guards everything below.
	mu           sync.Mutex
	wanted       []bool    // pieces the user wants fetched in the background
	wantedLeft   int       // wanted pieces not yet verified
	avail        []int     // how many connected peers have each piece
	prio         []prioCls // computed priority class of each piece
	prioKey      []int64   // ordering inside a class (smaller first)
	downloads    map[int]*pieceDownload
	waiters      map[int]chan struct{}
	readers      map[*Reader]struct{}
	peers        map[*peer]struct{}
	candidates   map[netip.AddrPort]*candidate
	banned       map[netip.Addr]bool
	strikes      map[netip.Addr]int
	dialing      int
	complete     chan struct{} // closed when every wanted piece is verified
	stats        Stats
	noPeerLog    map[int]bool // pieces whose "no peer has it" was logged
	lastPick     int          // rotating start for scans
	dirtyStore   bool
	failed       map[int]bool // pieces that failed verification at least once
	dlScratch    []*pieceDownload
	lastStoreErr error
	announceCh   chan struct{}
	lastUse      []int64     // when each piece was last read (unix nanoseconds), for eviction
	pins         map[int]int // pieces a read is copying now: never evicted
	busy         []bool      // piece being downloaded, verified or evicted: not to be picked
	urgent       []int       // pieces readers need (priority above normal), for the picker
	// streamStartKey is the priority key (wait start, unix ns) of the pieces under the oldest
	// blocked read when that read starts a stream, else 0 (recomputePriorityLocked,
	// streamStartLocked).
	streamStartKey int64
	// pickGen counts the events that may make a piece startable in the background (a piece
	// no longer busy, priorities derived again): a peer whose scan found nothing skips the
	// next one until it changes (peer.noPickGen), so an endgame does not scan every piece per
	// received block.
	pickGen    uint64
	blockRTT   time.Duration // smoothed time from a block request to its block, over all peers
	lateWake   *time.Timer   // wakes the peers when a request becomes late (wakeAtLocked)
	lateWakeAt int64         // when lateWake fires (unix ns), 0 when it is not armed
}

// Stats is a snapshot of a torrent's counters.
type Stats struct {
	// Downloaded counts verified piece bytes fetched from peers.
	Downloaded int64
	// Uploaded counts block bytes sent to peers.
	Uploaded int64
	// Wasted counts bytes received that were duplicates or belonged to pieces that failed.
	Wasted int64
	// PiecesFetched counts pieces verified after a download from peers (not from disk).
	PiecesFetched int
	// HashFailures counts pieces that failed SHA-1 verification.
	HashFailures int
	// Banned counts peers banned for bad data.
	Banned int
	// Peers is the number of connected peers now; PeersSeen how many were ever connected.
	Peers, PeersSeen int
	// DownloadRate and UploadRate are bytes per second, smoothed.
	DownloadRate, UploadRate float64
	// Verified is the number of verified pieces; Pieces the total.
	Verified, Pieces int
	// VerifiedBytes is the size of the verified pieces.
	VerifiedBytes int64
	// WaitingReads counts reads blocked on pieces.
	WaitingReads int
	// Evicted counts pieces evicted to keep the cache under its limit.
	Evicted int
}

type candidate struct {
	failures  int
	nextTry   time.Time
	connected bool
	plaintext bool // dropped our encrypted handshake and took a plaintext one: dial it so
}

// AddTorrent starts fetching and serving mi with the given options.
func (c *Client) AddTorrent(mi *torrentfile.Metainfo, opts TorrentOptions) (*Torrent, error) {
	if opts.Storage == nil {
		return nil, fmt.Errorf("add torrent %s: no storage", mi.Info.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if _, ok := c.torrents[mi.InfoHash]; ok {
		return nil, fmt.Errorf("add torrent %s: already added", mi.Info.Name)
	}
	n := mi.Info.NumPieces()
	t := &Torrent{
		c: c, hash: mi.InfoHash, mi: mi, info: &mi.Info, store: opts.Storage, opts: opts,
		log:    c.log.With("torrent", mi.Info.Name),
		closed: make(chan struct{}),
		// At most ~16 MiB of written pieces wait for verification: when hashing is slower
		// than the network, the peers' read loops wait for it instead of the page cache
		// filling with unverified pieces.
		verifyq:    make(chan verifyJob, max(4, min(64, int(16<<20/max(mi.Info.PieceLength, 1))))),
		wanted:     make([]bool, n),
		avail:      make([]int, n),
		prio:       make([]prioCls, n),
		prioKey:    make([]int64, n),
		downloads:  map[int]*pieceDownload{},
		waiters:    map[int]chan struct{}{},
		readers:    map[*Reader]struct{}{},
		peers:      map[*peer]struct{}{},
		candidates: map[netip.AddrPort]*candidate{},
		banned:     map[netip.Addr]bool{},
		strikes:    map[netip.Addr]int{},
		complete:   make(chan struct{}),
		noPeerLog:  map[int]bool{},
		failed:     map[int]bool{},
		announceCh: make(chan struct{}, 1),
		lastUse:    make([]int64, n),
		pins:       map[int]int{},
		busy:       make([]bool, n),
		pickGen:    1, // never 0, which peer.noPickGen uses for "unknown"
	}
	t.ctx, t.cancel = context.WithCancel(c.ctx)
	t.setWantedLocked(opts.Include)
	t.recomputeAllPrioritiesLocked()
	c.verifiedBytes.Add(t.store.VerifiedBytes())
	c.torrents[t.hash] = t
	t.startWorkers()
	t.mu.Lock()
	t.addCandidatesLocked(opts.Peers)
	t.mu.Unlock()
	return t, nil
}

// Metainfo returns the torrent's metainfo.
func (t *Torrent) Metainfo() *torrentfile.Metainfo { return t.mi }

// Storage returns the torrent's storage.
func (t *Torrent) Storage() *cache.Storage { return t.store }

// Complete is closed once every wanted piece is verified.
func (t *Torrent) Complete() <-chan struct{} { return t.complete }

// SetInclude changes which files are wanted in the background.
func (t *Torrent) SetInclude(include func(fileIndex int) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setWantedLocked(include)
	t.recomputeAllPrioritiesLocked()
	t.wakeAllLocked()
}

// SetBackground turns background fetching of the wanted pieces on or off (--prefetch).
func (t *Torrent) SetBackground(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opts.Background = on
	t.recomputeAllPrioritiesLocked()
	t.wakeAllLocked()
}

func (t *Torrent) setWantedLocked(include func(int) bool) {
	for i := range t.wanted {
		t.wanted[i] = false
	}
	for fi, f := range t.info.Files {
		if f.Length == 0 || f.Padding || (include != nil && !include(fi)) {
			continue
		}
		first, last := t.info.PieceRange(f.Offset, f.Length)
		for i := first; i < last; i++ {
			t.wanted[i] = true
		}
	}
	t.wantedLeft = 0
	for i, w := range t.wanted {
		if w && !t.store.Verified(i) {
			t.wantedLeft++
		}
	}
	t.checkCompleteLocked()
}

func (t *Torrent) checkCompleteLocked() {
	if t.wantedLeft == 0 {
		select {
		case <-t.complete:
		default:
			close(t.complete)
		}
	}
}

// Stats returns a snapshot of the torrent's counters.
func (t *Torrent) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Peers = len(t.peers)
	s.Verified = t.store.VerifiedCount()
	s.Pieces = t.info.NumPieces()
	s.VerifiedBytes = t.store.VerifiedBytes()
	for r := range t.readers {
		s.WaitingReads += r.waitingReads
	}
	return s
}

// Seeding reports whether every piece is verified.
func (t *Torrent) Seeding() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.store.VerifiedCount() == t.info.NumPieces()
}

func (t *Torrent) acceptsIncoming() bool {
	select {
	case <-t.closed:
		return false
	default:
		return true
	}
}

func (t *Torrent) connOptions() p2p.Options {
	info := t.info
	return p2p.Options{
		NumPieces: info.NumPieces(),
		PieceSize: func(i uint32) uint32 { return uint32(info.PieceSize(int(i))) },
		Reserved:  p2p.ReservedBits(true, t.c.dht != nil && !info.Private, true),
	}
}

// Close stops the torrent: peers are disconnected, "stopped" is announced, and the storage's
// completion record is saved. The storage itself stays open (its owner closes it). It may be
// called more than once and from several goroutines at once (a user's Close and Client.Close):
// every call returns when the torrent is closed, with the first call's result.
func (t *Torrent) Close() error {
	t.closeOnce.Do(func() { t.closeErr = t.close() })
	return t.closeErr
}

func (t *Torrent) close() error {
	close(t.closed)
	t.cancel()
	t.mu.Lock()
	if t.lateWake != nil {
		t.lateWake.Stop()
	}
	for p := range t.peers {
		p.conn.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.c.removeTorrent(t)
	t.c.verifiedBytes.Add(-t.store.VerifiedBytes())
	if err := t.store.Sync(); err != nil {
		return fmt.Errorf("save %s: %w", t.info.Name, err)
	}
	return nil
}

// wakeAllLocked asks every peer's writer to look for work.
func (t *Torrent) wakeAllLocked() {
	for p := range t.peers {
		p.wake()
	}
}

// StoreError returns the last error storing a verified piece (a full disk, an unwritable
// folder), or nil. The engine keeps going; a command may decide to stop.
func (t *Torrent) StoreError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastStoreErr
}

// WaitPiece fetches piece i first and waits until it is verified.
func (t *Torrent) WaitPiece(ctx context.Context, i int) error {
	if i < 0 || i >= t.info.NumPieces() {
		return fmt.Errorf("piece %d: %s has pieces 0 to %d", i, t.info.Name, t.info.NumPieces()-1)
	}
	r := &Reader{t: t, file: -1, size: t.info.Length, waits: map[int]time.Time{}, waitCount: map[int]int{}}
	t.mu.Lock()
	t.readers[r] = struct{}{}
	t.mu.Unlock()
	defer r.Close()
	return r.Wait(ctx, t.info.PieceOffset(i), t.info.PieceSize(i))
}
