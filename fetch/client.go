// Package fetch is the gotfs engine: it decides which pieces to fetch from which peers and when,
// verifies them, stores them through cache, and serves them to readers and to other peers.
//
// fetch holds the policy; the packages below it hold mechanisms: p2p speaks the wire protocol,
// tracker finds peers, cache stores verified bytes, torrentfile describes the layout.
package fetch

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotfs/gotfs/dht"
	"github.com/gotfs/gotfs/internal/rawnet"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/tracker"
	"github.com/gotfs/gotfs/webseed"
)

// PeerIDPrefix starts every peer id gotfs uses (Azureus style: client "GT", version 0001).
const PeerIDPrefix = "-GT0001-"

// Config configures a Client. The zero value is usable.
type Config struct {
	// ListenAddr is where the client accepts peers ("host:port"); "" means ":0" (any port).
	// When its host is a specific address, outgoing connections leave from that address too.
	ListenAddr string
	// PeerID is our peer id; zero means a random id with PeerIDPrefix.
	PeerID [20]byte
	// MaxPeers bounds the connections per torrent (default 50).
	MaxPeers int
	// UploadSlots is how many peers are unchoked by rate, besides the optimistic one (default 4).
	UploadSlots int
	// NoUpload turns off serving blocks to other peers.
	NoUpload bool
	// Tracker is the tracker client to announce with; nil makes one.
	Tracker *tracker.Client
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// DHT is the DHT node torrents use to find peers and announce themselves (nil: none).
	// The client does not own it: its creator closes it after the client.
	DHT *dht.Server
	// CacheLimit bounds the verified bytes kept by all the client's torrents (0 = no bound):
	// past it the least recently read pieces that no reader needs are evicted.
	CacheLimit int64
	// MaxInflight bounds the bytes requested from peers and not received yet, over every peer
	// of every torrent (default DefaultMaxInflight), so that a thousand peers cost what fifty
	// do: each peer's pipeline is sized by its rate, within what is left of this budget.
	MaxInflight int64
	// NoWebSeeds ignores the torrents' web seeds (url-list, httpseeds).
	NoWebSeeds bool
	// Encryption is the protocol encryption (MSE/PE) policy; the zero value is
	// EncryptionPrefer.
	Encryption Encryption
	// Transport chooses the transports of peer connections: TCP and uTP (the default), or
	// one of them. With a Listener it is the listener's.
	Transport Transport
	// Listener is the peer sockets, opened with Listen before the client (so that a DHT node
	// can share the UDP port: Listener.DHTConns); nil makes the client open them on
	// ListenAddr for Transport. The client owns it from NewClient on, also when that fails.
	Listener *Listener
	// MaxDownloadRate and MaxUploadRate cap the block bytes received from and sent to all
	// peers of all torrents, in bytes per second (0 = no cap); SetRateLimits changes them.
	MaxDownloadRate, MaxUploadRate int64

	// Tests: how long a uTP connection attempt may take before TCP is tried (0: the
	// default), and a wrapper of the UDP socket a Listener opened by NewClient runs over.
	utpConnectTimeout time.Duration
	wrapUDP           func(net.PacketConn) net.PacketConn
}

// DefaultMaxInflight is Config.MaxInflight's default: 64 MiB, more than a full pipeline to
// 50 fast peers (rate × (round trip + 1 s) each) needs on a fast link.
const DefaultMaxInflight = 64 << 20

// Client owns the listening sockets and the torrents that share them.
type Client struct {
	cfg       Config
	log       *slog.Logger
	peerID    [20]byte
	lis       *Listener  // TCP listener and uTP socket on one port number
	localIP   netip.Addr // source address for outgoing connections, if the listener has one
	tracker   *tracker.Client
	ownsTrack bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	torrents map[torrentfile.Hash]*Torrent
	fetches  map[torrentfile.Hash]*metadataFetch // magnet links whose metadata is being fetched
	closed   bool

	announceKey uint32 // sent to trackers so they recognise us across address changes

	// handshaking holds the incoming connections still in their handshake (guarded by mu);
	// handshakes counts them until their peer is handed over. Close closes them and waits,
	// after closing the listener and before closing the torrents.
	handshaking map[net.Conn]struct{}
	handshakes  sync.WaitGroup
	pending     chan struct{} // one token per incoming connection in its handshake (maxHandshakes)

	dht           *dht.Server
	verifiedBytes atomic.Int64    // verified bytes of every torrent, for CacheLimit
	inflight      atomic.Int64    // blocks requested from peers and not received or forgotten yet
	hashAheadBufs sync.Pool       // *[]byte of hashAheadRead bytes: scratch for hashing blocks ahead
	web           *webseed.Client // HTTP for every torrent's web seeds; nil with NoWebSeeds
	evicting      sync.Mutex      // one eviction at a time

	downLimit, upLimit *byteLimiter // client-wide caps (ratelimit.go)

	// Test hooks, nil outside tests; set before the client is used.
	testHookEvictPicked func()                         // evictOnce: after the pick, before evict
	testHookEvicting    func(t *Torrent, pieces []int) // evict: after the decision, before the punch
}

// NewClient starts listening for peers.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Listener != nil {
		cfg.Transport = cfg.Listener.tr
	}
	c, err := newClient(cfg)
	if err != nil && cfg.Listener != nil {
		cfg.Listener.Close()
	}
	return c, err
}

func newClient(cfg Config) (*Client, error) {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = 50
	}
	if cfg.UploadSlots <= 0 {
		cfg.UploadSlots = 4
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = ":0"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log, peerID: cfg.PeerID, torrents: map[torrentfile.Hash]*Torrent{}, fetches: map[torrentfile.Hash]*metadataFetch{}, handshaking: map[net.Conn]struct{}{}, dht: cfg.DHT,
		pending:   make(chan struct{}, maxHandshakes),
		downLimit: newByteLimiter(cfg.MaxDownloadRate), upLimit: newByteLimiter(cfg.MaxUploadRate)}
	c.hashAheadBufs.New = func() any { b := make([]byte, hashAheadRead); return &b }
	if !cfg.NoWebSeeds {
		c.web = webseed.NewClient(webseed.Config{Logger: log, UserAgent: "gotfs"})
	}
	if c.peerID == ([20]byte{}) {
		copy(c.peerID[:], PeerIDPrefix)
		if _, err := rand.Read(c.peerID[len(PeerIDPrefix):]); err != nil {
			return nil, fmt.Errorf("make peer id: %w", err)
		}
	}
	var key [4]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("make tracker key: %w", err)
	}
	c.announceKey = uint32(key[0])<<24 | uint32(key[1])<<16 | uint32(key[2])<<8 | uint32(key[3])
	c.lis = cfg.Listener
	if c.lis == nil {
		lis, err := Listen(cfg.ListenAddr, cfg.Transport, ListenOptions{Logger: log, wrapUDP: cfg.wrapUDP})
		if err != nil {
			return nil, err
		}
		c.lis = lis
	}
	if ap := c.lis.Addr(); !ap.Addr().IsUnspecified() {
		c.localIP = ap.Addr()
	}
	c.tracker = cfg.Tracker
	if c.tracker == nil {
		c.tracker = tracker.NewClient(tracker.ClientOptions{Logger: log, LocalAddr: c.localIP})
		c.ownsTrack = true
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.lis.tcp != nil {
		c.wg.Add(1)
		go c.acceptLoop(c.lis.tcp)
	}
	if c.lis.utp != nil {
		c.wg.Add(1)
		go c.acceptLoop(c.lis.utp)
	}
	return c, nil
}

// PeerID returns the client's peer id.
func (c *Client) PeerID() [20]byte { return c.peerID }

// Addr returns the address the client listens on (over TCP, uTP or both).
func (c *Client) Addr() netip.AddrPort { return c.lis.Addr() }

// Port returns the port the client listens on (TCP and UDP).
func (c *Client) Port() uint16 { return c.Addr().Port() }

// maxHandshakes bounds incoming connections still in their handshake: a flood of connections
// that never finish their handshake costs at most this many goroutines and sockets.
const maxHandshakes = 64

// acceptLoop hands the connections ln accepts (TCP or uTP: everything above the transport is
// the same) to handleIncoming.
func (c *Client) acceptLoop(ln net.Listener) {
	defer c.wg.Done()
	pending := c.pending
	for {
		nc, err := ln.Accept()
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Debug("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case pending <- struct{}{}:
		default:
			c.log.Debug("too many handshakes under way; connection refused", "remote", nc.RemoteAddr())
			nc.Close()
			continue
		}
		c.mu.Lock()
		if c.closed {
			// Close has begun (and waits, or will wait, for handshakes): no new one.
			c.mu.Unlock()
			<-pending
			nc.Close()
			return
		}
		nc = rawnet.TCP(nc)
		c.handshaking[nc] = struct{}{}
		c.handshakes.Add(1)
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handleIncoming(nc, pending)
		}()
	}
}

// handleIncoming does the handshake of a connection acceptLoop registered in c.handshaking,
// then hands the peer to the torrent or the metadata fetch the handshake chose.
func (c *Client) handleIncoming(nc net.Conn, pending chan struct{}) {
	handshaking := true
	handedOver := func() {
		if !handshaking {
			return
		}
		handshaking = false
		<-pending
		c.mu.Lock()
		delete(c.handshaking, nc)
		c.mu.Unlock()
		c.handshakes.Done()
	}
	defer handedOver()
	// Only the callback decides where the peer goes: what it chose is kept even when the
	// torrent closes before the handshake ends (addPeer then refuses the peer).
	var t *Torrent
	var f *metadataFetch
	conn, hs, err := p2p.AcceptWith(nc, c.peerID, func(ih [20]byte) (p2p.Options, bool) {
		c.mu.Lock()
		tt := c.torrents[torrentfile.Hash(ih)]
		ff := c.fetches[torrentfile.Hash(ih)]
		c.mu.Unlock()
		if tt != nil && tt.acceptsIncoming() {
			t = tt
			return tt.connOptions(), true
		}
		if ff != nil {
			f = ff
			return metadataConnOptions(), true
		}
		return p2p.Options{}, false
	}, c.acceptConfig())
	if err != nil {
		handedOver()
		c.log.Debug("incoming handshake", "remote", nc.RemoteAddr(), "err", err)
		nc.Close()
		return
	}
	switch {
	case t != nil:
		t.addPeer(conn, hs, true) // refuses it when t closed meanwhile
		handedOver()
	case f != nil:
		handedOver()
		f.serveIncoming(conn, hs)
	default: // not reached: Accept fails when the callback refuses
		handedOver()
		conn.Close()
	}
}

// isSelf reports whether ap is (most likely) our own listening address, as trackers and the
// DHT hand it back to us.
func (c *Client) isSelf(ap netip.AddrPort) bool {
	self := c.Addr()
	if ap == self {
		return true
	}
	return !c.localIP.IsValid() && ap.Port() == self.Port() && ap.Addr().IsLoopback()
}

// Close closes the listener and the incoming connections still in their handshake, stops
// every torrent (announcing "stopped") and waits for every goroutine the client started.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ts := make([]*Torrent, 0, len(c.torrents))
	for _, t := range c.torrents {
		ts = append(ts, t)
	}
	c.mu.Unlock()
	// No peer may come in while the torrents close: stop accepting first, cut the handshakes
	// under way short and wait until each ended or handed its peer over. (The uTP socket
	// carries the peers' connections too: it closes after the torrents; meanwhile its accept
	// loop refuses what comes since c.closed is set.)
	if c.lis.tcp != nil {
		c.lis.tcp.Close()
	}
	c.mu.Lock()
	for nc := range c.handshaking {
		nc.Close()
	}
	c.mu.Unlock()
	c.handshakes.Wait()
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.Close())
	}
	c.lis.Close()
	c.cancel()
	c.wg.Wait()
	if c.ownsTrack {
		c.tracker.Close()
	}
	if c.web != nil {
		c.web.Close()
	}
	return errors.Join(errs...)
}

func (c *Client) removeTorrent(t *Torrent) {
	c.mu.Lock()
	if c.torrents[t.hash] == t {
		delete(c.torrents, t.hash)
	}
	c.mu.Unlock()
}

// inflightRoom is how many more blocks may be requested before the in-flight budget is spent.
func (c *Client) inflightRoom() int {
	return int(c.cfg.MaxInflight/blockSize - c.inflight.Load())
}
