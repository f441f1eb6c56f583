package dht

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

const (
	alpha              = 3   // queries in flight per lookup
	maxLookupQueries   = 256 // a lookup gives up after this many queries
	maxLookupCands     = 256 // candidates kept per lookup
	lookupStartingSize = 2 * bucketSize
)

type candState int

const (
	candFresh candState = iota
	candInFlight
	candDone
	candFailed
)

// cand is a node a lookup may ask.
type cand struct {
	id    [20]byte
	hasID bool // false for bootstrap addresses whose id we do not know yet
	addr  netip.AddrPort
	state candState
	token string
}

type lookupResult struct {
	c   *cand
	m   *msg
	err error
}

// lookup is one iterative find_node or get_peers search.
type lookup struct {
	s         *Server
	target    [20]byte
	getPeers  bool
	onPeers   func([]netip.AddrPort)
	cands     []*cand
	seenAddr  map[netip.AddrPort]bool
	seenID    map[[20]byte]bool
	seenPeers map[netip.AddrPort]bool
	queries   int
	answered  int
}

// lookup searches for the nodes closest to target, starting from the routing table and seeds
// (addresses of unknown id), with alpha queries in flight. It returns when the k closest
// nodes found have answered, when no candidate is left, or when ctx ends. For get_peers
// lookups, onPeers gets each new batch of peers (deduplicated), from this goroutine. It
// returns the nodes that answered, closest first.
func (s *Server) lookup(ctx context.Context, target [20]byte, getPeers bool, seeds []netip.AddrPort,
	onPeers func([]netip.AddrPort), peersSeen ...netip.AddrPort) ([]*cand, error) {
	l := &lookup{
		s: s, target: target, getPeers: getPeers, onPeers: onPeers,
		seenAddr: make(map[netip.AddrPort]bool), seenID: make(map[[20]byte]bool),
		seenPeers: make(map[netip.AddrPort]bool),
	}
	for _, p := range peersSeen {
		l.seenPeers[p] = true
	}
	s.mu.Lock()
	start := s.table.closest(target, lookupStartingSize, s.cfg.now())
	s.mu.Unlock()
	for _, n := range start {
		l.addNode(n)
	}
	for _, a := range seeds {
		if usableAddr(a, s.cfg.PublicOnly) && a != s.addr && !l.seenAddr[a] {
			l.seenAddr[a] = true
			l.cands = append(l.cands, &cand{addr: a})
		}
	}
	l.sort()
	if len(l.cands) == 0 {
		return nil, ErrNoNodes
	}

	results := make(chan lookupResult, alpha)
	inflight := 0
	defer func() { // every query goroutine has ended when lookup returns
		for ; inflight > 0; inflight-- {
			<-results
		}
	}()
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	method := "find_node"
	a := &args{ID: string(s.id[:]), Target: string(target[:])}
	if getPeers {
		method = "get_peers"
		a = &args{ID: string(s.id[:]), InfoHash: string(target[:])}
	}
	for {
		for inflight < alpha && l.queries < maxLookupQueries {
			c := l.next()
			if c == nil {
				break
			}
			c.state = candInFlight
			inflight++
			l.queries++
			go func() {
				m, err := s.query(qctx, c.addr, method, a, 1)
				results <- lookupResult{c, m, err}
			}()
		}
		if inflight == 0 || l.converged() {
			break
		}
		select {
		case r := <-results:
			inflight--
			l.process(r)
		case <-ctx.Done():
			return nil, fmt.Errorf("dht: %s lookup for %x: %w", method, target, ctx.Err())
		}
	}
	var done []*cand
	for _, c := range l.cands {
		if c.state == candDone {
			done = append(done, c)
		}
	}
	if len(done) == 0 {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dht: %s lookup for %x: %w", method, target, ctx.Err())
		}
		return nil, fmt.Errorf("dht: %s lookup for %x: %w", method, target, ErrNoNodes)
	}
	return done, nil
}

// addNode adds a candidate learned from the table or a response, unless already known.
func (l *lookup) addNode(n nodeInfo) {
	if n.ID == l.s.id || n.Addr == l.s.addr || l.seenAddr[n.Addr] || l.seenID[n.ID] ||
		!usableAddr(n.Addr, l.s.cfg.PublicOnly) {
		return
	}
	l.seenAddr[n.Addr] = true
	l.seenID[n.ID] = true
	l.cands = append(l.cands, &cand{id: n.ID, hasID: true, addr: n.Addr})
}

// sort orders candidates: unknown ids first, then by distance to the target; it drops the
// farthest fresh candidates beyond maxLookupCands.
func (l *lookup) sort() {
	slices.SortStableFunc(l.cands, func(a, b *cand) int {
		switch {
		case !a.hasID && !b.hasID:
			return 0
		case !a.hasID:
			return -1
		case !b.hasID:
			return 1
		case xorLess(l.target, a.id, b.id):
			return -1
		case xorLess(l.target, b.id, a.id):
			return 1
		}
		return 0
	})
	for i := len(l.cands) - 1; i >= 0 && len(l.cands) > maxLookupCands; i-- {
		if l.cands[i].state == candFresh {
			l.cands = slices.Delete(l.cands, i, i+1)
		}
	}
}

// next returns the candidate to ask next: a seed, else the closest fresh one among the k
// closest that have not failed.
func (l *lookup) next() *cand {
	count := 0
	for _, c := range l.cands {
		if !c.hasID {
			if c.state == candFresh {
				return c
			}
			continue
		}
		if c.state == candFailed {
			continue
		}
		if count == bucketSize {
			break
		}
		count++
		if c.state == candFresh {
			return c
		}
	}
	return nil
}

// converged reports whether the k closest candidates that have not failed have all answered
// (and no seed is still pending).
func (l *lookup) converged() bool {
	count := 0
	for _, c := range l.cands {
		if !c.hasID {
			if c.state == candFresh || c.state == candInFlight {
				return false
			}
			continue
		}
		if c.state == candFailed {
			continue
		}
		if c.state != candDone {
			return false
		}
		if count++; count == bucketSize {
			return true
		}
	}
	return false // fewer than k: wait for every query (next finds no fresh one, inflight reaches 0)
}

func (l *lookup) process(r lookupResult) {
	c := r.c
	if r.err != nil {
		c.state = candFailed
		if c.hasID && errors.Is(r.err, errTimeout) {
			l.s.nodeFailed(c.id, c.addr)
		}
		return
	}
	id := [20]byte([]byte(r.m.R.ID))
	if !c.hasID || c.id != id {
		if id == l.s.id || (l.seenID[id] && c.id != id) {
			c.state = candFailed // ourselves, or a second address for a node already seen
			return
		}
		c.id, c.hasID = id, true
		l.seenID[id] = true
	}
	c.state = candDone
	c.token = r.m.R.Token
	l.answered++
	nodes, _ := parseCompactNodes(r.m.R.Nodes) // length checked in validateResponse
	for _, n := range nodes {
		l.addNode(n)
	}
	if l.getPeers && len(r.m.R.Values) > 0 {
		var fresh []netip.AddrPort
		for _, v := range r.m.R.Values {
			p, ok := parseCompactAddr(v)
			if !ok || !usableAddr(p, l.s.cfg.PublicOnly) || l.seenPeers[p] {
				continue
			}
			if len(l.seenPeers) < 1<<16 {
				l.seenPeers[p] = true
			}
			fresh = append(fresh, p)
		}
		if len(fresh) > 0 && l.onPeers != nil {
			l.onPeers(fresh)
		}
	}
	l.sort()
}

// Bootstrap fills the routing table: a find_node lookup for our own id starting from the
// bootstrap nodes, the saved table and the current table. It returns an error when no node
// answered.
func (s *Server) Bootstrap(ctx context.Context) error {
	var seeds []netip.AddrPort
	var resolveErrs []error
	for _, hp := range s.cfg.Bootstrap {
		addrs, err := resolve(ctx, hp)
		if err != nil {
			resolveErrs = append(resolveErrs, err)
			continue
		}
		seeds = append(seeds, addrs...)
	}
	s.mu.Lock()
	for _, n := range s.saved {
		seeds = append(seeds, n.Addr)
	}
	s.mu.Unlock()
	if _, err := s.lookup(ctx, s.id, false, seeds, nil); err != nil {
		return fmt.Errorf("dht: bootstrap: %w", errors.Join(append([]error{err}, resolveErrs...)...))
	}
	return nil
}

// resolve turns "host:port" into IPv4 addresses.
func resolve(ctx context.Context, hostport string) ([]netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("dht: bootstrap node %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dht: bootstrap node %q: invalid port", hostport)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return nil, fmt.Errorf("dht: bootstrap node %q: %w", hostport, err)
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	return out, nil
}

// GetPeers looks up peers for infoHash: the peers stored at this node, then an iterative
// get_peers lookup with alpha = 3 queries in flight. onPeers is called (from the calling
// goroutine) with each batch of new peers as values arrive, never twice with the same peer.
// It returns when the k closest nodes have answered, or when ctx ends (with ctx's error).
func (s *Server) GetPeers(ctx context.Context, infoHash [20]byte, onPeers func([]netip.AddrPort)) error {
	_, err := s.getPeers(ctx, infoHash, onPeers)
	return err
}

func (s *Server) getPeers(ctx context.Context, infoHash [20]byte, onPeers func([]netip.AddrPort)) ([]*cand, error) {
	s.mu.Lock()
	local := s.peers.get(infoHash, s.cfg.MaxValues, s.cfg.now())
	s.mu.Unlock()
	if len(local) > 0 && onPeers != nil {
		onPeers(slices.Clone(local))
	}
	done, err := s.lookup(ctx, infoHash, true, nil, onPeers, local...)
	if err != nil {
		return nil, fmt.Errorf("dht: get_peers %x: %w", infoHash, err)
	}
	return done, nil
}

// Announce runs a get_peers lookup for infoHash (calling onPeers as GetPeers does) and then
// sends announce_peer, with the token each gave, to the k closest nodes that answered with a
// token. port is the peer's TCP port; 0 announces with implied_port (the UDP source port). It
// returns an error when no node accepted the announce.
func (s *Server) Announce(ctx context.Context, infoHash [20]byte, port uint16, onPeers func([]netip.AddrPort)) error {
	// Our own node answers get_peers with us too: in a small swarm it may be the only node a
	// peer asks. Only a definite address can be handed out.
	if ip := s.addr.Addr(); !ip.IsUnspecified() {
		p := port
		if p == 0 {
			p = s.addr.Port()
		}
		s.mu.Lock()
		s.peers.add(infoHash, netip.AddrPortFrom(ip, p), s.cfg.now())
		s.mu.Unlock()
	}
	done, err := s.getPeers(ctx, infoHash, onPeers)
	if err != nil {
		return fmt.Errorf("dht: announce: %w", err)
	}
	a := args{ID: string(s.id[:]), InfoHash: string(infoHash[:]), Port: int64(port), HasPort: true}
	if port == 0 {
		a.Port, a.ImpliedPort = int64(s.addr.Port()), true
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	var mu sync.Mutex
	var errs []error
	n := 0
	for _, c := range done {
		if c.token == "" {
			continue
		}
		if n++; n > bucketSize {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca := a
			ca.Token = c.token
			if _, err := s.query(ctx, c.addr, "announce_peer", &ca, 1+s.cfg.Retries); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	if ok.Load() == 0 {
		return fmt.Errorf("dht: announce %x: no node accepted it: %w", infoHash, errors.Join(append([]error{ErrNoNodes}, errs...)...))
	}
	return nil
}
