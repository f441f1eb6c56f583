// Package dht is a BitTorrent DHT node (BEP 5): KRPC over UDP, a Kademlia routing table,
// announce tokens, a bounded peer store, and iterative get_peers/find_node lookups.
//
// It holds mechanism only: which torrents to look up or announce, and when, is the caller's
// business. A node runs the IPv4 DHT, the IPv6 DHT (BEP 32), or both, each with its own
// socket, node id and routing table; its ids follow its external addresses (BEP 42) and nodes
// whose id does not match their address are kept out of the routing tables.
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
	"slices"
	"strconv"
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
	// Addr is the UDP listen address. With no host (":6881", ":0", or "") the node runs both
	// DHTs (BEP 32): IPv4 on 0.0.0.0 and IPv6 on [::], on the same port number (IPv6 is left
	// out, with a warning, when it cannot be bound). An IPv4 host ("127.0.0.1:0") runs the IPv4
	// DHT only, an IPv6 host ("[::1]:0") the IPv6 DHT only.
	Addr string
	// Addr6 is the IPv6 listen address when Addr names an IPv4 host (or none), e.g. "[::1]:0"
	// beside "127.0.0.1:0"; "" means the default above.
	Addr6 string
	// Conn and Conn6 are sockets to use instead of binding any (for example the non-uTP side of
	// the listen port's uTP socket): Conn carries the IPv4 DHT, Conn6 the IPv6 one; either may
	// be nil, and both may be the same dual-stack socket (packets go to the DHT of their source
	// address's family). Addr and Addr6 are then ignored. The Server closes them at Close.
	Conn, Conn6 net.PacketConn
	// NodeID is our node id (the same in both DHTs); zero means the one saved at StatePath,
	// else a random one. An id set here is kept even when it does not match our external
	// address (BEP 42).
	NodeID [20]byte
	// Bootstrap lists "host:port" routers or nodes Bootstrap starts from. nil means
	// DefaultBootstrap(); an empty non-nil slice means none (only the saved table). Host names
	// are resolved in each family the node runs.
	Bootstrap []string
	// StatePath is where the node ids and routing tables are saved at Close and loaded at New;
	// "" keeps no state.
	StatePath string
	// Logger receives debug logs of dropped packets and the like; nil discards them.
	Logger *slog.Logger
	// PublicOnly refuses loopback, private and link-local addresses as nodes and peers (the
	// default accepts them).
	PublicOnly bool
	// TrustAnyNodeID lets nodes whose id does not match their address (BEP 42) into the
	// routing table. By default they are still asked in lookups, but kept out of the table,
	// do not count among the k closest nodes that end a lookup, and are announced to only
	// when too few matching nodes gave a token. Nodes on local addresses are exempt.
	TrustAnyNodeID bool
	// ExternalVotes is how many distinct nodes must report the same external address (the
	// "ip" key of their responses), and more than half of the nodes that reported one, before
	// the node takes it as its own and derives its id from it (BEP 42). Default 5.
	ExternalVotes int

	// MaxPeersPerHash bounds the peers stored per info hash (default 200).
	MaxPeersPerHash int
	// MaxHashes bounds the info hashes in the peer store (default 5000).
	MaxHashes int
	// MaxValues bounds the peers returned in one get_peers answer (default 50; an IPv6 answer
	// holds at most 38, to stay within 1024 bytes).
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
	checkLocalIDs       bool // tests: BEP 42 checks local addresses too
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
	setDefault(&c.ExternalVotes, 5)
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
	Nodes       int    // nodes in the routing tables (both families)
	Nodes6      int    // of which in the IPv6 table
	Buckets     int    // buckets in the routing tables
	InfoHashes  int    // info hashes in the peer store
	Peers       int    // peers in the peer store
	QueriesIn   uint64 // queries received and answered (or refused with an error)
	QueriesOut  uint64 // queries sent
	ResponsesIn uint64 // responses and errors matched to our queries
	Timeouts    uint64 // queries that got no answer in time
	Dropped     uint64 // packets dropped: malformed, unexpected, rate limited, too large
	RateLimited uint64 // of which dropped by the per-IP rate limit
}

// family is one of the node's two DHTs (BEP 32): its socket, node id and routing table.
type family struct {
	v6   bool
	conn net.PacketConn
	udp  *net.UDPConn // conn, when it is one (reads and writes without allocating)
	addr netip.AddrPort

	// Guarded by Server.mu.
	id       [20]byte
	table    *table
	saved    []nodeInfo // nodes from the state file, tried by Bootstrap
	voter    *ipVoter
	external netip.Addr // our external address, once known
}

func (f *family) name() string {
	if f.v6 {
		return "IPv6"
	}
	return "IPv4"
}

func (f *family) writeTo(b []byte, to netip.AddrPort) error {
	if f.udp != nil {
		_, err := f.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := f.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// Server is a DHT node. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	v4, v6 *family          // nil when that DHT does not run
	conns  []net.PacketConn // distinct sockets, each with a read loop

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sem     chan struct{} // bounds background pings
	closeMu sync.Once
	closeEr error

	mu          sync.Mutex
	closed      bool
	peers       *peerStore
	tokens      *tokenSecrets
	limiter     *rateLimiter
	pending     map[string]*pendingQuery
	pendingAddr map[netip.AddrPort]int
	pinging     map[netip.AddrPort]bool
	tid         uint32

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

// New binds the UDP sockets (or takes Config.Conn and Conn6) and starts the node's read
// loops and maintenance.
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
	if err := s.listen(); err != nil {
		return nil, err
	}
	now := cfg.now()
	var random [20]byte
	rand.Read(random[:])
	for _, f := range s.families() {
		switch {
		case cfg.NodeID != [20]byte{}:
			f.id = cfg.NodeID
		case st != nil && st.idOf(f.v6) != [20]byte{}:
			f.id = st.idOf(f.v6)
		default:
			f.id = random
		}
		if st != nil {
			f.saved = st.nodesOf(f.v6)
		}
		f.table = newTable(f.id, now)
		f.voter = newIPVoter(cfg.ExternalVotes)
	}
	s.peers = newPeerStore(cfg.MaxPeersPerHash, cfg.MaxHashes, cfg.PeerTTL)
	s.tokens = newTokenSecrets(now)
	s.limiter = newRateLimiter(cfg.QueriesPerSecondPerIP, cfg.BurstPerIP, cfg.MaxTrackedIPs)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1 + len(s.conns))
	for _, c := range s.conns {
		go s.readLoop(c)
	}
	go s.maintain()
	return s, nil
}

// listen binds the sockets Config asks for, or takes the ones it gives.
func (s *Server) listen() error {
	cfg := &s.cfg
	if cfg.Conn != nil || cfg.Conn6 != nil {
		if cfg.Conn != nil {
			s.v4 = s.newFamily(false, cfg.Conn)
		}
		if cfg.Conn6 != nil {
			s.v6 = s.newFamily(true, cfg.Conn6)
		}
		return nil
	}
	addr := cfg.Addr
	if addr == "" {
		addr = ":0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dht: listen address %q: %w", cfg.Addr, err)
	}
	ip, ipErr := netip.ParseAddr(host)
	if ipErr == nil && ip.Is6() && !ip.Is4In6() {
		if cfg.Addr6 != "" {
			return fmt.Errorf("dht: listen addresses %q and %q are both IPv6", cfg.Addr, cfg.Addr6)
		}
		return s.bind(true, addr)
	}
	if err := s.bind(false, addr); err != nil {
		return err
	}
	switch {
	case cfg.Addr6 != "":
		if err := s.bind(true, cfg.Addr6); err != nil {
			s.v4.conn.Close()
			return err
		}
	case host == "":
		// Both families on one port number: the IPv4 one, which may have been chosen by the
		// kernel. A port taken in IPv6 only (rare) is tried again with a new pair.
		for try := 0; ; try++ {
			err := s.bind(true, net.JoinHostPort("::", strconv.Itoa(int(s.v4.addr.Port()))))
			if err == nil {
				break
			}
			if port != "0" || try == 3 {
				s.log.Warn("dht: no IPv6 DHT", "err", err)
				break
			}
			s.v4.conn.Close()
			s.conns, s.v4 = nil, nil
			if err := s.bind(false, addr); err != nil {
				return err
			}
		}
	}
	return nil
}

// bind listens on addr for the DHT of one family.
func (s *Server) bind(v6 bool, addr string) error {
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		return fmt.Errorf("dht: listen on %s: %w", addr, err)
	}
	f := s.newFamily(v6, pc)
	if v6 {
		s.v6 = f
	} else {
		s.v4 = f
	}
	return nil
}

func (s *Server) newFamily(v6 bool, pc net.PacketConn) *family {
	f := &family{v6: v6, conn: pc}
	f.udp, _ = pc.(*net.UDPConn)
	if ap, err := netip.ParseAddrPort(pc.LocalAddr().String()); err == nil {
		f.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if !slices.Contains(s.conns, pc) {
		s.conns = append(s.conns, pc)
	}
	return f
}

// families returns the DHTs the node runs, IPv4 first.
func (s *Server) families() []*family {
	var out []*family
	if s.v4 != nil {
		out = append(out, s.v4)
	}
	if s.v6 != nil {
		out = append(out, s.v6)
	}
	return out
}

// familyOf returns the DHT for ip's family, or nil when it does not run.
func (s *Server) familyOf(ip netip.Addr) *family {
	if ip.Unmap().Is4() {
		return s.v4
	}
	if ip.Is6() {
		return s.v6
	}
	return nil
}

// idOf returns our node id in f's DHT.
func (s *Server) idOf(f *family) [20]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.id
}

// Addr returns the UDP address of the IPv4 DHT, or of the IPv6 DHT when only that one runs.
func (s *Server) Addr() netip.AddrPort { return s.families()[0].addr }

// Addr6 returns the UDP address of the IPv6 DHT (invalid when it does not run).
func (s *Server) Addr6() netip.AddrPort {
	if s.v6 == nil {
		return netip.AddrPort{}
	}
	return s.v6.addr
}

// AddrFor returns the UDP address of the DHT of ip's family (invalid when it does not run):
// the port a PORT message to a peer at ip names (BEP 32).
func (s *Server) AddrFor(ip netip.Addr) netip.AddrPort {
	if f := s.familyOf(ip); f != nil {
		return f.addr
	}
	return netip.AddrPort{}
}

// ID returns our node id in the IPv4 DHT, or in the IPv6 DHT when only that one runs.
func (s *Server) ID() [20]byte { return s.idOf(s.families()[0]) }

// ID6 returns our node id in the IPv6 DHT (zero when it does not run). It differs from ID once
// the ids are derived from our external addresses (BEP 42).
func (s *Server) ID6() [20]byte {
	if s.v6 == nil {
		return [20]byte{}
	}
	return s.idOf(s.v6)
}

// ExternalAddrs returns our external IPv4 and IPv6 addresses as far as they are known (from
// SetExternalAddr or the votes of the nodes that answer us); unknown ones are invalid.
func (s *Server) ExternalAddrs() (v4, v6 netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v4 != nil {
		v4 = s.v4.external
	}
	if s.v6 != nil {
		v6 = s.v6.external
	}
	return v4, v6
}

// SetExternalAddr tells the node its external address in ip's family (learned from a port
// mapping, say; the nodes' votes call it too). Unless Config.NodeID was set or ip is a local
// address, our id in that DHT becomes one that matches ip (BEP 42) if it does not already,
// and the routing table is rebuilt around it.
func (s *Server) SetExternalAddr(ip netip.Addr) {
	ip = ip.Unmap().WithZone("")
	f := s.familyOf(ip)
	if f == nil || ip.IsUnspecified() || ip.IsMulticast() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setExternalLocked(f, ip)
}

func (s *Server) setExternalLocked(f *family, ip netip.Addr) {
	f.external = ip
	if s.cfg.NodeID != ([20]byte{}) || (bep42Exempt(ip) && !s.cfg.checkLocalIDs) || nodeIDMatches(f.id, ip) {
		return
	}
	old := f.id
	f.id = makeNodeID(ip)
	f.table = f.table.rekey(f.id, s.cfg.now())
	s.log.Info("dht: new node id for our external address (BEP 42)", "family", f.name(), "ip", ip,
		"old", fmt.Sprintf("%x", old), "new", fmt.Sprintf("%x", f.id))
}

// VoteExternalAddr counts what a peer at voter says our address is (the "yourip" of its
// BEP 10 handshake), as a node's "ip" key counts: the address most voters agree on becomes the
// node's external address (SetExternalAddr).
func (s *Server) VoteExternalAddr(voter, ip netip.Addr) {
	ip = ip.Unmap()
	if f := s.familyOf(ip); f != nil {
		s.voteFor(f, voter.Unmap(), ip)
	}
}

// vote counts what a node at voter says our address is (the "ip" key of its response).
func (s *Server) vote(f *family, voter netip.Addr, compact string) {
	ap, ok := parseCompactAddr(compact)
	if !ok {
		return
	}
	s.voteFor(f, voter, ap.Addr())
}

// voteFor counts one voter's word that ip is our address in family f.
func (s *Server) voteFor(f *family, voter, ip netip.Addr) {
	if (s.familyOf(ip) != f) || ip.IsUnspecified() || ip.IsMulticast() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if won := f.voter.vote(voter.WithZone(""), ip); won.IsValid() && won != f.external {
		s.setExternalLocked(f, won)
	}
}

// trusted reports whether the node (id, addr) may enter a routing table: its address is one a
// table can hold (no IPv6 link-local), and its id matches its address (BEP 42) unless the
// address is local or Config.TrustAnyNodeID is set.
func (s *Server) trusted(id [20]byte, addr netip.AddrPort) bool {
	ip := addr.Addr()
	if ip.Zone() != "" || (ip.Is6() && ip.IsLinkLocalUnicast()) {
		return false
	}
	return s.cfg.TrustAnyNodeID || (bep42Exempt(ip) && !s.cfg.checkLocalIDs) || nodeIDMatches(id, ip)
}

// Stats returns the node's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{InfoHashes: len(s.peers.m), Peers: s.peers.total}
	for _, f := range s.families() {
		n := f.table.len()
		st.Nodes += n
		st.Buckets += len(f.table.buckets)
		if f.v6 {
			st.Nodes6 = n
		}
	}
	s.mu.Unlock()
	st.QueriesIn = s.queriesIn.Load()
	st.QueriesOut = s.queriesOut.Load()
	st.ResponsesIn = s.responsesIn.Load()
	st.Timeouts = s.timeouts.Load()
	st.Dropped = s.dropped.Load()
	st.RateLimited = s.rateLimited.Load()
	return st
}

// Close stops every goroutine of the node, closes its sockets and saves both routing tables
// to StatePath. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeMu.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		var err error
		for _, c := range s.conns {
			if e := c.Close(); e != nil {
				err = errors.Join(err, fmt.Errorf("dht: close socket: %w", e))
			}
		}
		s.wg.Wait()
		if s.cfg.StatePath != "" {
			st := &state{}
			s.mu.Lock()
			for _, f := range s.families() {
				nodes := f.table.all()
				if len(nodes) == 0 {
					nodes = f.saved // do not forget a saved table we had no time to check
				}
				st.nodes = append(st.nodes, nodes...)
				if f.v6 {
					st.id6 = f.id
				} else {
					st.id = f.id
				}
			}
			s.mu.Unlock()
			err = errors.Join(err, saveState(s.cfg.StatePath, st))
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

func (s *Server) readLoop(c net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, maxPacket+1)
	udp, _ := c.(*net.UDPConn)
	for {
		var n int
		var src netip.AddrPort
		var err error
		if udp != nil {
			n, src, err = udp.ReadFromUDPAddrPort(buf)
		} else {
			var a net.Addr
			if n, a, err = c.ReadFrom(buf); err == nil {
				if ua, ok := a.(*net.UDPAddr); ok {
					src = ua.AddrPort()
				}
			}
		}
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
	f := s.familyOf(src.Addr())
	if f == nil {
		s.drop("no DHT of the source's address family", src, nil)
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
		s.handleQuery(f, m, src, now)
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
	if len(m.R.Nodes6)%compactNode6Len != 0 {
		return fmt.Errorf("nodes6 of %d bytes, not a multiple of %d", len(m.R.Nodes6), compactNode6Len)
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

func (s *Server) send(f *family, to netip.AddrPort, m *msg) {
	if err := f.writeTo(m.encode(), to); err != nil && s.ctx.Err() == nil {
		s.log.Debug("dht: send", "to", to, "err", err)
	}
}

func (s *Server) sendError(f *family, to netip.AddrPort, tid string, code int64, text string) {
	s.send(f, to, &msg{T: tid, Y: "e", E: &Error{Code: code, Msg: text}, V: version})
}

// maxReply is the payload a reply should stay within (BEP 32: 1024 octets, so that it crosses
// IPv6 links unfragmented); answers are sized to fit.
const maxReply = 1024

// wants returns which node lists a find_node or get_peers answer to a query over f carries:
// those of the "want" list (BEP 32), else f's own; only the DHTs we run.
func (s *Server) wants(f *family, want []string) (v4, v6 bool) {
	if want == nil {
		v4, v6 = !f.v6, f.v6
	} else {
		v4, v6 = slices.Contains(want, "n4"), slices.Contains(want, "n6")
	}
	return v4 && s.v4 != nil, v6 && s.v6 != nil
}

// closestNodesLocked fills r's "nodes" and "nodes6" with the nodes closest to target.
func (s *Server) closestNodesLocked(r *ret, target [20]byte, v4, v6 bool, now time.Time) {
	if v4 {
		r.Nodes = string(appendCompactNodes(nil, s.v4.table.closest(target, bucketSize, now)))
	}
	if v6 {
		r.Nodes6 = string(appendCompactNodes6(nil, s.v6.table.closest(target, bucketSize, now)))
	}
}

func (s *Server) handleQuery(f *family, m *msg, src netip.AddrPort, now time.Time) {
	s.queriesIn.Add(1)
	a := m.A
	if len(a.ID) != 20 {
		s.sendError(f, src, m.T, errProtocol, "invalid id")
		return
	}
	id := [20]byte([]byte(a.ID))
	s.mu.Lock()
	self := f.id
	known := f.table.queried(id, src, now)
	verify := !known && !m.RO && id != self && s.trusted(id, src) && f.table.wouldAdd(id, now) && !s.pinging[src]
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
	// BEP 42: every answer tells the requester its address as we see it.
	r := &ret{ID: string(self[:])}
	ip := string(appendCompactAddr(nil, netip.AddrPortFrom(src.Addr().WithZone(""), src.Port())))
	switch m.Q {
	case "ping":
	case "find_node":
		if len(a.Target) != 20 {
			s.sendError(f, src, m.T, errProtocol, "invalid target")
			return
		}
		v4, v6 := s.wants(f, a.Want)
		s.mu.Lock()
		s.closestNodesLocked(r, [20]byte([]byte(a.Target)), v4, v6, now)
		s.mu.Unlock()
	case "get_peers":
		if len(a.InfoHash) != 20 {
			s.sendError(f, src, m.T, errProtocol, "invalid info_hash")
			return
		}
		h := [20]byte([]byte(a.InfoHash))
		// Values of the query's family only (BEP 32), as many as fit in a reply.
		maxValues, size := s.cfg.MaxValues, 6
		if f.v6 {
			size = 18
		}
		maxValues = min(maxValues, (maxReply-200)/(size+3))
		s.mu.Lock()
		r.Token = s.tokens.token(src.Addr(), now)
		peers := s.peers.get(h, maxValues, now, func(p netip.AddrPort) bool { return p.Addr().Is6() == f.v6 })
		if len(peers) == 0 {
			v4, v6 := s.wants(f, a.Want)
			s.closestNodesLocked(r, h, v4, v6, now)
		}
		s.mu.Unlock()
		if len(peers) > 0 {
			r.Values = make([]string, len(peers))
			for i, p := range peers {
				r.Values[i] = string(appendCompactAddr(nil, p))
			}
		}
	case "announce_peer":
		if len(a.InfoHash) != 20 {
			s.sendError(f, src, m.T, errProtocol, "invalid info_hash")
			return
		}
		port := a.Port
		if a.ImpliedPort {
			port = int64(src.Port())
		} else if !a.HasPort || port < 1 || port > 65535 {
			s.sendError(f, src, m.T, errProtocol, "invalid port")
			return
		}
		// The peer's address is the query's source: an announce over IPv6 stores an IPv6 peer.
		peer := netip.AddrPortFrom(src.Addr().WithZone(""), uint16(port))
		s.mu.Lock()
		valid := s.tokens.valid(src.Addr(), a.Token, now)
		stored := valid && s.peers.add([20]byte([]byte(a.InfoHash)), peer, now)
		s.mu.Unlock()
		if !valid {
			s.sendError(f, src, m.T, errProtocol, "bad token")
			return
		}
		if !stored {
			s.sendError(f, src, m.T, errServer, "peer store full")
			return
		}
	default:
		s.sendError(f, src, m.T, errMethod, "method unknown")
		return
	}
	s.send(f, src, &msg{T: m.T, Y: "r", R: r, IP: ip, V: version})
}

// verifyNode pings a node that queried us; it enters the table if it answers.
func (s *Server) verifyNode(ctx context.Context, addr netip.AddrPort) {
	defer func() {
		s.mu.Lock()
		delete(s.pinging, addr)
		s.mu.Unlock()
	}()
	if _, err := s.query(ctx, addr, "ping", &args{}, 1); err != nil {
		s.log.Debug("dht: node that queried us did not answer a ping", "addr", addr, "err", err)
	}
}

// query sends a query to addr and waits for its answer, sending it again (with a new
// transaction id) up to attempts-1 times after a timeout. Our id in addr's DHT is filled in.
// A node that answers is offered to the routing table, and its "ip" key counts as a vote for
// our external address. KRPC errors are returned as *Error.
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
	f := s.familyOf(addr.Addr())
	if f == nil {
		return nil, fmt.Errorf("dht: %s to %s: no DHT of that address family", method, addr)
	}
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
	qa := *a
	qa.ID = string(f.id[:])
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.pending[tid] == p {
			s.removePendingLocked(tid, p)
		}
		s.mu.Unlock()
	}()
	s.queriesOut.Add(1)
	out := (&msg{T: tid, Y: "q", Q: method, A: &qa, V: version}).encode()
	if err := f.writeTo(out, addr); err != nil {
		return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, err)
	}
	timer := time.NewTimer(s.cfg.QueryTimeout)
	defer timer.Stop()
	select {
	case m := <-ch:
		if m.Y == "e" {
			return nil, fmt.Errorf("dht: %s to %s: %w", method, addr, m.E)
		}
		if m.IP != "" {
			s.vote(f, addr.Addr(), m.IP)
		}
		s.noteResponse(f, [20]byte([]byte(m.R.ID)), addr)
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

// noteResponse offers a node that answered us to the routing table (if it may enter it), and
// starts pinging a questionable node when the table asks for it.
func (s *Server) noteResponse(f *family, id [20]byte, addr netip.AddrPort) {
	if !usableAddr(addr, s.cfg.PublicOnly) || !s.trusted(id, addr) {
		return
	}
	s.mu.Lock()
	if id == f.id {
		s.mu.Unlock()
		return
	}
	ping := f.table.responded(id, addr, s.cfg.now())
	s.mu.Unlock()
	if ping == nil {
		return
	}
	if !s.goBackground(func(ctx context.Context) { s.pingQuestionable(ctx, f, ping) }) {
		s.mu.Lock()
		ping.pinging = false
		s.mu.Unlock()
	}
}

// pingQuestionable pings n (and then the further nodes the table asks for) and reports the
// results to f's table.
func (s *Server) pingQuestionable(ctx context.Context, f *family, n *node) {
	for n != nil {
		s.mu.Lock()
		addr := n.addr
		s.mu.Unlock()
		_, err := s.queryOnce(ctx, addr, "ping", &args{})
		s.mu.Lock()
		if ctx.Err() != nil {
			n.pinging = false
			s.mu.Unlock()
			return
		}
		var krpcErr *Error
		n = f.table.pingResult(n, err == nil || errors.As(err, &krpcErr), s.cfg.now())
		s.mu.Unlock()
	}
}

// nodeFailed records that a node of a lookup did not answer.
func (s *Server) nodeFailed(f *family, id [20]byte, addr netip.AddrPort) {
	s.mu.Lock()
	f.table.failed(id, addr)
	s.mu.Unlock()
}

// AddNode pings addr (a node learned elsewhere: a peer's PORT message, a torrent's "nodes")
// in the background and adds it to the routing table of its family if it answers. Addresses
// of a family the node does not run are ignored.
func (s *Server) AddNode(addr netip.AddrPort) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	f := s.familyOf(addr.Addr())
	if f == nil || !usableAddr(addr, s.cfg.PublicOnly) || addr == f.addr {
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
		if _, err := s.query(ctx, addr, "ping", &args{}, 1+s.cfg.Retries); err != nil {
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
		type refresh struct {
			f      *family
			target [20]byte
		}
		var stale []refresh
		s.mu.Lock()
		s.tokens.rotate(now)
		s.peers.expire(now)
		s.limiter.sweep(now)
		for _, f := range s.families() {
			for _, target := range f.table.staleBuckets(now) {
				stale = append(stale, refresh{f, target})
			}
		}
		s.mu.Unlock()
		for _, r := range stale {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			_, err := s.lookup(ctx, r.f, r.target, false, nil, nil)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Debug("dht: bucket refresh", "family", r.f.name(), "target", fmt.Sprintf("%x", r.target), "err", err)
			}
			if s.ctx.Err() != nil {
				return
			}
		}
	}
}
