package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/webseed"
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
	pt           *pieceTable // every piece's state
	picker       picker
	claimScratch []claim
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
	dirtyStore   bool
	failed       map[int]bool // pieces that failed verification at least once
	dlScratch    []*pieceDownload
	lastStoreErr error
	announceCh   chan struct{}
	webSeeds     []*webseed.Source // the torrent's web seeds (webseed.go), fixed at start
	webWake      chan struct{}     // closed and replaced to wake the idle web seed workers
	webNoPickGen uint64            // the web seeds' memory of a fruitless background scan
	preempted    int               // requests cancelled to make room for a blocked read's blocks
	hashedAhead  int64             // piece bytes hashed before their piece was complete (hashahead.go)
	blockRTT     time.Duration     // smoothed time from a block request to its block, over all peers
	lateWake     *time.Timer       // wakes the peers when a request becomes late (wakeAtLocked)
	lateWakeAt   int64             // when lateWake fires (unix ns), 0 when it is not armed
	// The peers' summed and largest rate estimates, and when they were summed (deadline.go).
	swarmTotal, swarmFastest float64
	swarmRatesAt             time.Time
	fastCan                  map[int]bool // fastPeerCanLocked's answers since swarmRatesAt
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
	plaintext bool     // dropped our encrypted handshake and took a plaintext one: dial it so
	utp       utpState // whether it speaks uTP, as far as we know (transport.go)
	// introducers are the connected peers that told us of it by PEX and support
	// ut_holepunch: the relays to ask when it cannot be reached directly (holepunch.go).
	introducers []*peer
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
	t := &Torrent{
		c: c, hash: mi.InfoHash, mi: mi, info: &mi.Info, store: opts.Storage, opts: opts,
		log:    c.log.With("torrent", mi.Info.Name),
		closed: make(chan struct{}),
		// At most ~16 MiB of written pieces wait for verification: when hashing is slower
		// than the network, the peers' read loops wait for it instead of the page cache
		// filling with unverified pieces.
		verifyq:    make(chan verifyJob, max(4, min(64, int(16<<20/max(mi.Info.PieceLength, 1))))),
		pt:         newPieceTable(opts.Storage, opts.Background),
		picker:     picker{randIntN: rand.IntN},
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
	t.pt.setBackground(on)
	t.recomputeAllPrioritiesLocked()
	t.wakeAllLocked()
}

func (t *Torrent) setWantedLocked(include func(int) bool) {
	t.pt.setWanted(t.info, include)
	t.checkCompleteLocked()
}

// checkCompleteLocked closes t.complete once every wanted piece is verified.
func (t *Torrent) checkCompleteLocked() {
	if t.pt.complete() {
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

// wakeAllLocked asks every peer's writer and the idle web seed workers to look for work.
func (t *Torrent) wakeAllLocked() {
	for p := range t.peers {
		p.wake()
	}
	t.wakeWebLocked()
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
