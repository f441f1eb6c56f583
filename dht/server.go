// Package dht is a BitTorrent DHT node (BEP 5): KRPC over UDP, a Kademlia routing table,
// announce tokens, a bounded peer store, and iterative get_peers/find_node lookups.
//
// It holds mechanism only: which torrents to look up or announce, and when, is the caller's
// business. Only IPv4 is spoken (BEP 32's nodes6 is ignored).
//
// Loopback and private addresses are accepted by default, for nodes as well as for peers, so a
// DHT of processes on one host (tests on 127.0.0.0/8) works; Config.PublicOnly refuses them.
package dht

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBootstrap returns the public routers used when Config.Bootstrap is nil:
// router.bittorrent.com, dht.transmissionbt.com and router.utorrent.com, port 6881.
func DefaultBootstrap() []string {
	return []string{"router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881"}
}

// maxPacket is the largest KRPC packet accepted; larger ones are dropped.
const maxPacket = 8192

// maxPending bounds our outstanding queries.
const maxPending = 4096

// version is the "v" key we send: client "GT", version 0.1.
const version = "GT\x00\x01"

// Config configures a Server. Zero fields take the defaults given in their comments.
type Config struct {
	// Addr is the UDP listen address, e.g. "127.0.0.1:0" or ":6881". IPv4 only.
	Addr string
	// NodeID is our node id; zero means the one saved at StatePath, else a random one.
	NodeID [20]byte
	// Bootstrap lists "host:port" routers or nodes Bootstrap starts from. nil means
	// DefaultBootstrap(); an empty non-nil slice means none (only the saved table).
	Bootstrap []string
	// StatePath is where the node id and routing table are saved at Close and loaded at New;
	// "" keeps no state.
	StatePath string
	// Logger receives debug logs of dropped packets and the like; nil discards them.
	Logger *slog.Logger
	// PublicOnly refuses loopback, private and link-local addresses as nodes and peers (the
	// default accepts them).
	PublicOnly bool

	// MaxPeersPerHash bounds the peers stored per info hash (default 200).
	MaxPeersPerHash int
	// MaxHashes bounds the info hashes in the peer store (default 5000).
	MaxHashes int
	// MaxValues bounds the peers returned in one get_peers answer (default 50).
	MaxValues int
	// PeerTTL is how long an announced peer is kept (default 30 minutes).
	PeerTTL time.Duration
	// QueriesPerSecondPerIP is the sustained rate of unsolicited packets accepted from one IP
	// (default 20); BurstPerIP is the bucket size (default 100). Packets beyond are dropped.
	QueriesPerSecondPerIP float64
	BurstPerIP            int
	// MaxTrackedIPs bounds the rate limiter's memory (default 10000 addresses).
	MaxTrackedIPs int
	// QueryTimeout is how long to wait for an answer (default 2 s).
	QueryTimeout time.Duration
	// Retries is how many times a ping or announce_peer is sent again after a timeout
	// (default 1; negative means none). Lookup queries are not retried.
	Retries int

	maintenanceInterval time.Duration // default 1 minute
	now                 func() time.Time
}

func (c *Config) setDefaults() {
	if c.Bootstrap == nil {
		c.Bootstrap = DefaultBootstrap()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&c.MaxPeersPerHash, 200)
	setDefault(&c.MaxHashes, 5000)
	setDefault(&c.MaxValues, 50)
	setDefault(&c.PeerTTL, 30*time.Minute)
	setDefault(&c.QueriesPerSecondPerIP, 20)
	setDefault(&c.BurstPerIP, 100)
	setDefault(&c.MaxTrackedIPs, 10000)
	setDefault(&c.QueryTimeout, 2*time.Second)
	if c.Retries == 0 {
		c.Retries = 1
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	setDefault(&c.maintenanceInterval, time.Minute)
	if c.now == nil {
		c.now = time.Now
	}
}

func setDefault[T int | float64 | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Stats are counters of a Server.
type Stats struct {
	Nodes       int    // nodes in the routing table
	Buckets     int    // buckets in the routing table
	InfoHashes  int    // info hashes in the peer store
	Peers       int    // peers in the peer store
	QueriesIn   uint64 // queries received and answered (or refused with an error)
	QueriesOut  uint64 // queries sent
	ResponsesIn uint64 // responses and errors matched to our queries
	Timeouts    uint64 // queries that got no answer in time
	Dropped     uint64 // packets dropped: malformed, unexpected, rate limited, too large
	RateLimited uint64 // of which dropped by the per-IP rate limit
}

// Server is a DHT node. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	conn *net.UDPConn
	addr netip.AddrPort
	id   [20]byte

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sem     chan struct{} // bounds background pings
	closeMu sync.Once
	closeEr error

	mu          sync.Mutex
	closed      bool
	table       *table
	peers       *peerStore
	tokens      *tokenSecrets
	limiter     *rateLimiter
	pending     map[string]*pendingQuery
	pendingAddr map[netip.AddrPort]int
	pinging     map[netip.AddrPort]bool
	tid         uint32
	saved       []nodeInfo // nodes from the state file, tried by Bootstrap

	queriesIn, queriesOut, responsesIn, timeouts, dropped, rateLimited atomic.Uint64
}

type pendingQuery struct {
	addr netip.AddrPort
	ch   chan *msg // buffered; receives the one answer
}

var (
	errTimeout = errors.New("dht: query timed out")
	errClosed  = errors.New("dht: server closed")
	// ErrNoNodes is returned by lookups when no node could be asked or none answered.
	ErrNoNodes = errors.New("dht: no node answered")
)

// New binds the UDP socket and starts the node's read loop and maintenance.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		sem:         make(chan struct{}, 16),
		pending:     make(map[string]*pendingQuery),
		pendingAddr: make(map[netip.AddrPort]int),
		pinging:     make(map[netip.AddrPort]bool),
	}
	var st *state
	if cfg.StatePath != "" {
		var err error
		if st, err = loadState(cfg.StatePath); err != nil {
			s.log.Warn("dht: ignoring saved state", "path", cfg.StatePath, "err", err)
			st = nil
		}
	}
	switch {
	case cfg.NodeID != [20]byte{}:
		s.id = cfg.NodeID
	case st != nil && st.id != [20]byte{}:
		s.id = st.id
	default:
		rand.Read(s.id[:])
	}
	if st != nil {
		s.saved = st.nodes
	}
	if host, _, err := net.SplitHostPort(cfg.Addr); err == nil && host != "" {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.Unmap().Is4() {
			return nil, fmt.Errorf("dht: listen on %s: only IPv4 is supported", cfg.Addr)
		}
	}
	pc, err := net.ListenPacket("udp4", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dht: listen: %w", err)
	}
	s.conn = pc.(*net.UDPConn)
	la := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s.addr = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	now := cfg.now()
	s.table = newTable(s.id, now)
	s.peers = newPeerStore(cfg.MaxPeersPerHash, cfg.MaxHashes, cfg.PeerTTL)
	s.tokens = newTokenSecrets(now)
	s.limiter = newRateLimiter(cfg.QueriesPerSecondPerIP, cfg.BurstPerIP, cfg.MaxTrackedIPs)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.readLoop()
	go s.maintain()
	return s, nil
}

// Addr returns the UDP address the node listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// ID returns our node id.
func (s *Server) ID() [20]byte { return s.id }

// Stats returns the node's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Nodes: s.table.len(), Buckets: len(s.table.buckets), InfoHashes: len(s.peers.m), Peers: s.peers.total}
	s.mu.Unlock()
	st.QueriesIn = s.queriesIn.Load()
	st.QueriesOut = s.queriesOut.Load()
	st.ResponsesIn = s.responsesIn.Load()
	st.Timeouts = s.timeouts.Load()
	st.Dropped = s.dropped.Load()
	st.RateLimited = s.rateLimited.Load()
	return st
}

// Close stops every goroutine of the node, closes its socket and saves the routing table to
// StatePath. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeMu.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		err := s.conn.Close()
		s.wg.Wait()
		if err != nil {
			err = fmt.Errorf("dht: close socket: %w", err)
		}
		if s.cfg.StatePath != "" {
			s.mu.Lock()
			nodes := s.table.all()
			if len(nodes) == 0 {
				nodes = s.saved // do not forget a saved table we had no time to check
			}
			s.mu.Unlock()
			err = errors.Join(err, saveState(s.cfg.StatePath, &state{id: s.id, nodes: nodes}))
		}
		s.closeEr = err
	})
	return s.closeEr
}

// goBackground runs f in a goroutine owned by the server, unless the server is closed or too
// many such goroutines run already. It reports whether f was started.
func (s *Server) goBackground(f func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	select {
	case s.sem <- struct{}{}:
	default:
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		f(s.ctx)
	}()
	return true
}

func (s *Server) drop(reason string, src netip.AddrPort, err error) {
	s.dropped.Add(1)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("dht: dropped packet", "reason", reason, "from", src, "err", err)
	}
}

func (s *Server) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, maxPacket+1)
	for {
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dht: read", "err", err)
			continue
		}
		s.handlePacket(buf[:n], src)
	}
}

// handlePacket processes one received datagram. data is not retained.
func (s *Server) handlePacket(data []byte, src netip.AddrPort) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if len(data) > maxPacket {
		s.drop("packet too large", src, nil)
		return
	}
	if !usableAddr(src, s.cfg.PublicOnly) {
		s.drop("unusable source address", src, nil)
		return
	}
	now := s.cfg.now()
	// Unsolicited packets are charged to the source's bucket before decoding; packets from an
	// address we await an answer from are decoded first, and charged only if they are queries.
	s.mu.Lock()
	solicited := s.pendingAddr[src] > 0
	ok := solicited || s.limiter.allow(src.Addr(), now)
	s.mu.Unlock()
	if !ok {
		s.rateLimited.Add(1)
		s.drop("rate limited", src, nil)
		return
	}
	m, err := decodeMsg(data)
	if err != nil {
		s.drop("malformed", src, err)
		return
	}
	if solicited && m.Y == "q" {
		s.mu.Lock()
		ok = s.limiter.allow(src.Addr(), now)
		s.mu.Unlock()
		if !ok {
			s.rateLimited.Add(1)
			s.drop("rate limited", src, nil)
			return
		}
	}
	switch m.Y {
	case "q":
		s.handleQuery(m, src, now)
	default:
		s.handleResponse(m, src)
	}
}

// validateResponse checks the parts of a response we rely on.
func validateResponse(m *msg) error {
	if len(m.R.ID) != 20 {
		return fmt.Errorf("response id of %d bytes", len(m.R.ID))
	}
	if len(m.R.Nodes)%compactNodeLen != 0 {
		return fmt.Errorf("nodes of %d bytes, not a multiple of %d", len(m.R.Nodes), compactNodeLen)
	}
	return nil
}

func (s *Server) handleResponse(m *msg, src netip.AddrPort) {
	if m.Y == "r" {
		if err := validateResponse(m); err != nil {
			s.drop("invalid response", src, err)
			return
		}
	}
	s.mu.Lock()
	p := s.pending[m.T]
	if p == nil || p.addr != src {
		s.mu.Unlock()
		s.drop("unexpected response", src, nil)
		return
	}
	s.removePendingLocked(m.T, p)
	s.mu.Unlock()
	s.responsesIn.Add(1)
	p.ch <- m
}

func (s *Server) removePendingLocked(tid string, p *pendingQuery) {
	delete(s.pending, tid)
	if s.pendingAddr[p.addr]--; s.pendingAddr[p.addr] <= 0 {
		delete(s.pendingAddr, p.addr)
	}
}

func (s *Server) send(to netip.AddrPort, m *msg) {
	if _, err := s.conn.WriteToUDPAddrPort(m.encode(), to); err != nil && s.ctx.Err() == nil {
		s.log.Debug("dht: send", "to", to, "err", err)
	}
}

func (s *Server) sendError(to netip.AddrPort, tid string, code int64, text string) {
	s.send(to, &msg{T: tid, Y: "e", E: &Error{Code: code, Msg: text}, V: version})
}

func (s *Server) handleQuery(m *msg, src netip.AddrPort, now time.Time) {
	s.queriesIn.Add(1)
	a := m.A
	if len(a.ID) != 20 {
		s.sendError(src, m.T, errProtocol, "invalid id")
		return
	}
	id := [20]byte([]byte(a.ID))
	s.mu.Lock()
	known := s.table.queried(id, src, now)
	verify := !known && !m.RO && id != s.id && s.table.wouldAdd(id, now) && !s.pinging[src]
	if verify {
		s.pinging[src] = true
	}
	s.mu.Unlock()
	if verify {
		// A node that queries us goes into the table once it answers a ping of ours.
		if !s.goBackground(func(ctx context.Context) { s.verifyNode(ctx, src) }) {
			s.mu.Lock()
			delete(s.pinging, src)
			s.mu.Unlock()
		}
	}
	r := &ret{ID: string(s.id[:])}
	switch m.Q {
	case "ping":
	case "find_node":
		if len(a.Target) != 20 {
			s.sendError(src, m.T, errProtocol, "invalid target")
			return
		}
		s.mu.Lock()
		nodes := s.table.closest([20]byte([]byte(a.Target)), bucketSize, now)
		s.mu.Unlock()
		r.Nodes = string(appendCompactNodes(nil, nodes))
	case "get_peers":
		if len(a.InfoHash) != 20 {
			s.sendError(src, m.T, errProtocol, "invalid info_hash")
			return
		}
		h := [20]byte([]byte(a.InfoHash))
		s.mu.Lock()
		r.Token = s.tokens.token(src.Addr(), now)
		peers := s.peers.get(h, s.cfg.MaxValues, now)
		var nodes []nodeInfo
		if len(peers) == 0 {
			nodes = s.table.closest(h, bucketSize, now)
		}
		s.mu.Unlock()
		if len(peers) > 0 {
			r.Values = make([]string, len(peers))
			for i, p := range peers {
				r.Values[i] = string(appendCompactAddr(nil, p))
			}
		} else {
			r.Nodes = string(appendCompactNodes(nil, nodes))
		}
	case "announce_peer":
		if len(a.InfoHash) != 20 {
			s.sendError(src, m.T, errProtocol, "invalid info_hash")
			return
		}
		port := a.Port
		if a.ImpliedPort {
			port = int64(src.Port())
		} else if !a.HasPort || port < 1 || port > 65535 {
			s.sendError(src, m.T, errProtocol, "invalid port")
			return
		}
		peer := netip.AddrPortFrom(src.Addr(), uint16(port))
		s.mu.Lock()
		valid := s.tokens.valid(src.Addr(), a.Token, now)
		stored := valid && s.peers.add([20]byte([]byte(a.InfoHash)), peer, now)
		s.mu.Unlock()
		if !valid {
			s.sendError(src, m.T, errProtocol, "bad token")
			return
		}
		if !stored {
			s.sendError(src, m.T, errServer, "peer store full")
			return
		}
	default:
		s.sendError(src, m.T, errMethod, "method unknown")
		return
	}
	s.send(src, &msg{T: m.T, Y: "r", R: r, V: version})
}

// verifyNode pings a node that queried us; it enters the table if it answers.
func (s *Server) verifyNode(ctx context.Context, addr netip.AddrPort) {
	defer func() {
		s.mu.Lock()
		delete(s.pinging, addr)
		s.mu.Unlock()
	}()
	if _, err := s.query(ctx, addr, "ping", &args{ID: string(s.id[:])}, 1); err != nil {
		s.log.Debug("dht: node that queried us did not answer a ping", "addr", addr, "err", err)
	}
}

// query sends a query to addr and waits for its answer, sending it again (with a new
// transaction id) up to attempts-1 times after a timeout. A node that answers is offered to
// the routing table. A KRPC error answer is returned as *Error.
func (s *Server) query(ctx context.Context, addr netip.AddrPort, method string, a *args, attempts int) (*msg, error) {
	var err error
	for range max(attempts, 1) {
		var m *msg
		if m, err = s.queryOnce(ctx, addr, method, a); !errors.Is(err, errTimeout) {
			return m, err
		}
	}
	return nil, err
}

func (s *Server) queryOnce(ctx context.Context, addr netip.AddrPort, method string, a *args) (*msg, error) {
	ch := make(chan *msg, 1)
	p := &pendingQuery{addr: addr, ch: ch}
	var tid string
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	if len(s.pending) >= maxPending {
		s.mu.Unlock()
		return nil, fmt.Errorf("dht: %s to %s: %d queries in flight already", method, addr, maxPending)
	}
	for {
		s.tid++
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], s.tid)
		if tid = string(b[:]); s.pending[tid] == nil {
			break
		}
	}
	s.pending[tid] = p
	s.pendingAddr[addr]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.pending[tid] == p {
			s.removePendingLocked(tid, p)
		}
		s.mu.Unlock()
	}()
	s.queriesOut.Add(1)
	out := (&msg{T: tid, Y: "q", Q: method, A: a, V: version}).encode()
	if _, err := s.conn.WriteToUDPAddrPort(out, addr); err != nil {
		return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, err)
	}
	timer := time.NewTimer(s.cfg.QueryTimeout)
	defer timer.Stop()
	select {
	case m := <-ch:
		if m.Y == "e" {
			return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, m.E)
		}
		s.noteResponse([20]byte([]byte(m.R.ID)), addr)
		return m, nil
	case <-timer.C:
		s.timeouts.Add(1)
		return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, errTimeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, ctx.Err())
	case <-s.ctx.Done():
		return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, errClosed)
	}
}

// noteResponse offers a node that answered us to the routing table, and starts pinging a
// questionable node when the table asks for it.
func (s *Server) noteResponse(id [20]byte, addr netip.AddrPort) {
	if id == s.id || !usableAddr(addr, s.cfg.PublicOnly) {
		return
	}
	s.mu.Lock()
	ping := s.table.responded(id, addr, s.cfg.now())
	s.mu.Unlock()
	if ping == nil {
		return
	}
	if !s.goBackground(func(ctx context.Context) { s.pingQuestionable(ctx, ping) }) {
		s.mu.Lock()
		ping.pinging = false
		s.mu.Unlock()
	}
}

// pingQuestionable pings n (and then the further nodes the table asks for) and reports the
// results to the table.
func (s *Server) pingQuestionable(ctx context.Context, n *node) {
	for n != nil {
		s.mu.Lock()
		addr := n.addr
		s.mu.Unlock()
		_, err := s.queryOnce(ctx, addr, "ping", &args{ID: string(s.id[:])})
		s.mu.Lock()
		if ctx.Err() != nil {
			n.pinging = false
			s.mu.Unlock()
			return
		}
		var krpcErr *Error
		n = s.table.pingResult(n, err == nil || errors.As(err, &krpcErr), s.cfg.now())
		s.mu.Unlock()
	}
}

// nodeFailed records that a node of a lookup did not answer.
func (s *Server) nodeFailed(id [20]byte, addr netip.AddrPort) {
	s.mu.Lock()
	s.table.failed(id, addr)
	s.mu.Unlock()
}

// AddNode pings addr (a node learned elsewhere: a peer's PORT message, a torrent's "nodes")
// in the background and adds it to the routing table if it answers.
func (s *Server) AddNode(addr netip.AddrPort) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !usableAddr(addr, s.cfg.PublicOnly) || addr == s.addr {
		return
	}
	s.mu.Lock()
	if s.pinging[addr] {
		s.mu.Unlock()
		return
	}
	s.pinging[addr] = true
	s.mu.Unlock()
	started := s.goBackground(func(ctx context.Context) {
		defer func() {
			s.mu.Lock()
			delete(s.pinging, addr)
			s.mu.Unlock()
		}()
		if _, err := s.query(ctx, addr, "ping", &args{ID: string(s.id[:])}, 1+s.cfg.Retries); err != nil {
			s.log.Debug("dht: added node did not answer", "addr", addr, "err", err)
		}
	})
	if !started {
		s.mu.Lock()
		delete(s.pinging, addr)
		s.mu.Unlock()
		s.log.Debug("dht: too many pings in flight, node not added", "addr", addr)
	}
}

func (s *Server) maintain() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.maintenanceInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		now := s.cfg.now()
		s.mu.Lock()
		s.tokens.rotate(now)
		s.peers.expire(now)
		s.limiter.sweep(now)
		stale := s.table.staleBuckets(now)
		s.mu.Unlock()
		for _, target := range stale {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			_, err := s.lookup(ctx, target, false, nil, nil)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Debug("dht: bucket refresh", "target", fmt.Sprintf("%x", target), "err", err)
			}
			if s.ctx.Err() != nil {
				return
			}
		}
	}
}
