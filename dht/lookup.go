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
	id      [20]byte
	hasID   bool // false for bootstrap addresses whose id we do not know yet
	addr    netip.AddrPort
	state   candState
	token   string
	trusted bool // answered, and its id matches its address (BEP 42) or is exempt
}

// counts reports whether c takes one of the k places that decide what a lookup asks next and
// when it ends: not failed, and not an answered node whose id does not match its address
// (BEP 42: such nodes are asked, but do not end a lookup).
func (c *cand) counts() bool {
	return c.state != candFailed && (c.state != candDone || c.trusted)
}

type lookupResult struct {
	c   *cand
	m   *msg
	err error
}

// peerSink hands the peers that get_peers lookups find to the caller's onPeers, each peer once,
// never two calls at a time (the lookups of both DHTs feed one sink).
type peerSink struct {
	mu      sync.Mutex
	seen    map[netip.AddrPort]bool
	onPeers func([]netip.AddrPort)
}

// maxSeenPeers bounds the peers a sink remembers.
const maxSeenPeers = 1 << 16

func newPeerSink(onPeers func([]netip.AddrPort), known []netip.AddrPort) *peerSink {
	p := &peerSink{seen: make(map[netip.AddrPort]bool), onPeers: onPeers}
	for _, a := range known {
		p.seen[a] = true
	}
	return p
}

func (p *peerSink) deliver(peers []netip.AddrPort) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var fresh []netip.AddrPort
	for _, a := range peers {
		if p.seen[a] {
			continue
		}
		if len(p.seen) < maxSeenPeers {
			p.seen[a] = true
		}
		fresh = append(fresh, a)
	}
	if len(fresh) > 0 && p.onPeers != nil {
		p.onPeers(fresh)
	}
}

// lookup is one iterative find_node or get_peers search in one DHT.
type lookup struct {
	s        *Server
	f        *family
	self     [20]byte
	target   [20]byte
	getPeers bool
	sink     *peerSink
	leak     bool // add the other family's nodes of each answer to that DHT (bootstrap)
	cands    []*cand
	seenAddr map[netip.AddrPort]bool
	seenID   map[[20]byte]bool
	queries  int
	answered int
}

// lookup searches f's DHT for the nodes closest to target, starting from its routing table and
// seeds (addresses of unknown id), with alpha queries in flight. It returns when the k closest
// nodes found have answered, when no candidate is left, or when ctx ends. For get_peers
// lookups, the peers found go to sink. It returns the nodes that answered, closest first.
func (s *Server) lookup(ctx context.Context, f *family, target [20]byte, getPeers bool, seeds []netip.AddrPort,
	sink *peerSink) ([]*cand, error) {
	l := &lookup{
		s: s, f: f, target: target, getPeers: getPeers, sink: sink,
		seenAddr: make(map[netip.AddrPort]bool), seenID: make(map[[20]byte]bool),
	}
	now := s.cfg.now()
	s.mu.Lock()
	l.self = f.id
	start := f.table.closest(target, lookupStartingSize, now)
	s.mu.Unlock()
	for _, n := range start {
		l.addNode(n, netip.AddrPort{})
	}
	for _, a := range seeds {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if s.familyOf(a.Addr()) == f && usableAddr(a, s.cfg.PublicOnly) && a != f.addr && !l.seenAddr[a] {
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
	// BEP 32: ask for the nodes of our own family; a bootstrap of a node that runs both DHTs
	// asks for both, to fill the other table sooner.
	want := []string{"n4"}
	if f.v6 {
		want = []string{"n6"}
	}
	if seeds != nil && s.v4 != nil && s.v6 != nil {
		want, l.leak = []string{"n4", "n6"}, true
	}
	method := "find_node"
	a := &args{Target: string(target[:]), Want: want}
	if getPeers {
		method = "get_peers"
		a = &args{InfoHash: string(target[:]), Want: want}
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
			return nil, fmt.Errorf("dht: %s %s lookup for %x: %w", f.name(), method, target, ctx.Err())
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
			return nil, fmt.Errorf("dht: %s %s lookup for %x: %w", f.name(), method, target, ctx.Err())
		}
		return nil, fmt.Errorf("dht: %s %s lookup for %x: %w", f.name(), method, target, ErrNoNodes)
	}
	return done, nil
}

// addNode adds a candidate learned from the table or from the answer of the node at from
// (invalid for the table), unless already known or not to be contacted.
func (l *lookup) addNode(n nodeInfo, from netip.AddrPort) {
	if from.IsValid() && !nodeAddrOK(n.Addr, from, l.f.v6, l.s.cfg.PublicOnly) {
		return
	}
	if n.ID == l.self || n.Addr == l.f.addr || l.seenAddr[n.Addr] || l.seenID[n.ID] ||
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
// closest that count (see cand.counts).
func (l *lookup) next() *cand {
	count := 0
	for _, c := range l.cands {
		if !c.hasID {
			if c.state == candFresh {
				return c
			}
			continue
		}
		if !c.counts() {
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

// converged reports whether the k closest candidates that count have all answered (and no
// seed is still pending).
func (l *lookup) converged() bool {
	count := 0
	for _, c := range l.cands {
		if !c.hasID {
			if c.state == candFresh || c.state == candInFlight {
				return false
			}
			continue
		}
		if !c.counts() {
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
			l.s.nodeFailed(l.f, c.id, c.addr)
		}
		return
	}
	id := [20]byte([]byte(r.m.R.ID))
	if !c.hasID || c.id != id {
		if id == l.self || (l.seenID[id] && c.id != id) {
			c.state = candFailed // ourselves, or a second address for a node already seen
			return
		}
		c.id, c.hasID = id, true
		l.seenID[id] = true
	}
	c.state = candDone
	c.trusted = l.s.trusted(id, c.addr)
	c.token = r.m.R.Token
	l.answered++
	// Lengths were checked in validateResponse.
	own, other := r.m.R.Nodes, r.m.R.Nodes6
	if l.f.v6 {
		own, other = other, own
	}
	nodes, _ := parseNodes(own, l.f.v6)
	for _, n := range nodes {
		l.addNode(n, c.addr)
	}
	if l.leak {
		l.leakNodes(other, c.addr)
	}
	if l.getPeers && len(r.m.R.Values) > 0 {
		var peers []netip.AddrPort
		for _, v := range r.m.R.Values {
			// BEP 32: values may mix 6- and 18-byte entries; both are taken.
			p, ok := parseCompactAddr(v)
			if !ok || !usableAddr(p, l.s.cfg.PublicOnly) || locality(p.Addr()) < locality(c.addr.Addr()) {
				continue
			}
			peers = append(peers, p)
		}
		l.sink.deliver(peers)
	}
	l.sort()
}

// leakNodes offers the nodes of the other family that a bootstrap answer carried to that DHT
// (BEP 32, dual-stack bootstrap), at most k per answer.
func (l *lookup) leakNodes(list string, from netip.AddrPort) {
	nodes, _ := parseNodes(list, !l.f.v6)
	for i, n := range nodes {
		if i == bucketSize {
			break
		}
		if nodeAddrOK(n.Addr, from, !l.f.v6, l.s.cfg.PublicOnly) {
			l.s.AddNode(n.Addr)
		}
	}
}

// eachFamily runs fn for every DHT the node runs, at once, and joins their errors; it
// returns nil when fn succeeded for at least one.
func (s *Server) eachFamily(fn func(f *family) error) error {
	fams := s.families()
	errs := make([]error, len(fams))
	var wg sync.WaitGroup
	for i, f := range fams {
		wg.Go(func() { errs[i] = fn(f) })
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return errors.Join(errs...)
}

// Bootstrap fills the routing tables: in each DHT, a find_node lookup for our own id starting
// from the bootstrap nodes (host names resolved in that family), the saved table and the
// current table. It returns an error when no node answered in any DHT.
func (s *Server) Bootstrap(ctx context.Context) error {
	err := s.eachFamily(func(f *family) error {
		seeds := []netip.AddrPort{}
		var resolveErrs []error
		for _, hp := range s.cfg.Bootstrap {
			addrs, err := resolve(ctx, hp, f.v6)
			if err != nil {
				resolveErrs = append(resolveErrs, err)
				continue
			}
			seeds = append(seeds, addrs...)
		}
		s.mu.Lock()
		for _, n := range f.saved {
			seeds = append(seeds, n.Addr)
		}
		s.mu.Unlock()
		if _, err := s.lookup(ctx, f, s.idOf(f), false, seeds, nil); err != nil {
			return fmt.Errorf("%s: %w", f.name(), errors.Join(append([]error{err}, resolveErrs...)...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dht: bootstrap: %w", err)
	}
	return nil
}

// resolve turns "host:port" into addresses of one family (none for an address literal of the
// other family).
func resolve(ctx context.Context, hostport string, v6 bool) ([]netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap.Addr().Is6() != v6 {
			return nil, nil
		}
		return []netip.AddrPort{ap}, nil
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("dht: bootstrap node %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dht: bootstrap node %q: invalid port", hostport)
	}
	network := "ip4"
	if v6 {
		network = "ip6"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
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
// get_peers lookup in each DHT the node runs, with alpha = 3 queries in flight in each.
// onPeers is called with each batch of new peers as values arrive (IPv4 and IPv6 peers alike),
// never twice with the same peer and never two calls at a time. It returns when the k closest
// nodes have answered, or when ctx ends (with ctx's error); an error only when no DHT's
// lookup found a node that answered.
func (s *Server) GetPeers(ctx context.Context, infoHash [20]byte, onPeers func([]netip.AddrPort)) error {
	_, err := s.getPeers(ctx, infoHash, onPeers)
	return err
}

// getPeers runs GetPeers and returns the nodes that answered in each DHT.
func (s *Server) getPeers(ctx context.Context, infoHash [20]byte, onPeers func([]netip.AddrPort)) (map[*family][]*cand, error) {
	s.mu.Lock()
	local := s.peers.get(infoHash, s.cfg.MaxValues, s.cfg.now(), nil)
	s.mu.Unlock()
	sink := newPeerSink(onPeers, nil)
	sink.deliver(local)
	var mu sync.Mutex
	done := make(map[*family][]*cand)
	err := s.eachFamily(func(f *family) error {
		d, err := s.lookup(ctx, f, infoHash, true, nil, sink)
		mu.Lock()
		done[f] = d
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dht: get_peers %x: %w", infoHash, err)
	}
	return done, nil
}

// Announce runs get_peers lookups for infoHash (calling onPeers as GetPeers does) and then,
// in each DHT, sends announce_peer with the token each gave to the k closest nodes that
// answered with a token, preferring nodes whose id matches their address (BEP 42). port is
// the peer's TCP port; 0 announces with implied_port (the UDP source port). It returns an
// error when no node of any DHT accepted the announce.
func (s *Server) Announce(ctx context.Context, infoHash [20]byte, port uint16, onPeers func([]netip.AddrPort)) error {
	// Our own node answers get_peers with us too: in a small swarm it may be the only node a
	// peer asks. Only a definite address can be handed out.
	for _, f := range s.families() {
		if ip := f.addr.Addr(); !ip.IsUnspecified() {
			p := port
			if p == 0 {
				p = f.addr.Port()
			}
			s.mu.Lock()
			s.peers.add(infoHash, netip.AddrPortFrom(ip, p), s.cfg.now())
			s.mu.Unlock()
		}
	}
	done, err := s.getPeers(ctx, infoHash, onPeers)
	if err != nil {
		return fmt.Errorf("dht: announce: %w", err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	var mu sync.Mutex
	var errs []error
	for f, cands := range done {
		a := args{InfoHash: string(infoHash[:]), Port: int64(port), HasPort: true}
		if port == 0 {
			a.Port, a.ImpliedPort = int64(f.addr.Port()), true
		}
		for _, c := range announceTargets(cands) {
			wg.Go(func() {
				ca := a
				ca.Token = c.token
				if _, err := s.query(ctx, c.addr, "announce_peer", &ca, 1+s.cfg.Retries); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				ok.Add(1)
			})
		}
	}
	wg.Wait()
	if ok.Load() == 0 {
		return fmt.Errorf("dht: announce %x: no node accepted it: %w", infoHash, errors.Join(append([]error{ErrNoNodes}, errs...)...))
	}
	return nil
}

// announceTargets picks, from the nodes that answered a get_peers lookup (closest first), the
// k closest that gave a token and whose id matches their address; when fewer than k do,
// the closest others with a token make up the number.
func announceTargets(done []*cand) []*cand {
	var out, others []*cand
	for _, c := range done {
		switch {
		case c.token == "":
		case c.trusted && len(out) < bucketSize:
			out = append(out, c)
		case !c.trusted:
			others = append(others, c)
		}
	}
	for _, c := range others {
		if len(out) == bucketSize {
			break
		}
		out = append(out, c)
	}
	return out
}
