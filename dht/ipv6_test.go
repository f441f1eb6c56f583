package dht

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gotfs/gotfs/p2p/utp"
)

// newDualServer starts a node running both DHTs, on 127.0.0.x and ::1.
func newDualServer(t testing.TB, ip4 string, mod func(*Config)) *Server {
	return newTestServer(t, ip4+":0", func(c *Config) {
		c.Addr6 = "[::1]:0"
		if mod != nil {
			mod(c)
		}
	})
}

func (c *rawClient) addr() netip.AddrPort { return c.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// TestIPv6Swarm runs 16 nodes on [::1], bootstrapped in a chain: an IPv6-only DHT in which a
// peer announced by one node is found from others.
func TestIPv6Swarm(t *testing.T) {
	before := runtime.NumGoroutine()
	const n = 16
	nodes := make([]*Server, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range nodes {
		nodes[i] = newTestServer(t, "[::1]:0", nil)
		if a := nodes[i].Addr(); !a.Addr().Is6() || nodes[i].Addr6() != a {
			t.Fatalf("IPv6-only node listens on %v (Addr6 %v)", a, nodes[i].Addr6())
		}
		if i > 0 {
			nodes[i].cfg.Bootstrap = []string{nodes[i-1].Addr6().String()}
			if err := nodes[i].Bootstrap(ctx); err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
		}
	}
	for i := range n {
		if err := nodes[i].Bootstrap(ctx); err != nil {
			t.Fatalf("node %d second bootstrap: %v", i, err)
		}
		if st := nodes[i].Stats(); st.Nodes6 == 0 || st.Nodes != st.Nodes6 {
			t.Fatalf("node %d: stats %+v, want IPv6 nodes only", i, st)
		}
	}
	hash := [20]byte{0x66, 0x06}
	if err := nodes[n-1].Announce(ctx, hash, 5555, nil); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("[::1]:5555")
	for _, from := range []int{0, n / 2} {
		var got []netip.AddrPort
		if err := nodes[from].GetPeers(ctx, hash, func(ps []netip.AddrPort) { got = append(got, ps...) }); err != nil {
			t.Fatalf("GetPeers from node %d: %v", from, err)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("GetPeers from node %d found %v, want [%v]", from, got, want)
		}
	}
	for _, s := range nodes {
		s.Close()
	}
	waitGoroutines(t, before)
}

// TestIPv6Queries speaks KRPC by hand to a node running both DHTs: "want" decides the node
// lists, values are of the query's family, an announce over IPv6 stores an IPv6 peer, and
// every answer carries the requester's address in "ip" (BEP 42).
func TestIPv6Queries(t *testing.T) {
	s := newDualServer(t, "127.0.0.1", nil)
	// One node in each table.
	other := newDualServer(t, "127.0.0.2", nil)
	s.AddNode(other.Addr())
	s.AddNode(other.Addr6())
	waitFor(t, func() bool { st := s.Stats(); return st.Nodes == 2 && st.Nodes6 == 1 })

	c6 := newRawClient(t, "[::1]:0")
	c4 := newRawClient(t, "127.0.0.3:0")
	target := "TARGETTARGETTARGET00"
	for _, tc := range []struct {
		c          *rawClient
		to         netip.AddrPort
		want       []string
		nodes      bool
		nodes6     bool
		familyName string
	}{
		{c6, s.Addr6(), nil, false, true, "v6, no want"},
		{c4, s.Addr(), nil, true, false, "v4, no want"},
		{c6, s.Addr6(), []string{"n4", "n6"}, true, true, "v6, want both"},
		{c4, s.Addr(), []string{"n6"}, false, true, "v4, want n6"},
		{c6, s.Addr6(), []string{"n4", "x9"}, true, false, "v6, want n4 and an unknown flag"},
	} {
		r := tc.c.query(tc.to, &msg{T: "fn", Y: "q", Q: "find_node", A: &args{ID: clientID, Target: target, Want: tc.want}})
		if r.Y != "r" || (r.R.Nodes != "") != tc.nodes || (r.R.Nodes6 != "") != tc.nodes6 {
			t.Errorf("%s: nodes %d bytes, nodes6 %d bytes", tc.familyName, len(r.R.Nodes), len(r.R.Nodes6))
		}
		if ip, ok := parseCompactAddr(r.IP); !ok || ip != tc.c.addr() {
			t.Errorf("%s: ip %x, want %v", tc.familyName, r.IP, tc.c.addr())
		}
		nodes6, err := parseCompactNodes6(r.R.Nodes6)
		if err != nil || (tc.nodes6 && (len(nodes6) != 1 || nodes6[0].Addr != other.Addr6() || nodes6[0].ID != other.ID6())) {
			t.Errorf("%s: nodes6 %v (%v), want %v", tc.familyName, nodes6, err, other.Addr6())
		}
	}

	h := "HASH6HASH6HASH6HASH6"
	r := c6.query(s.Addr6(), &msg{T: "g1", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: h}})
	if r.Y != "r" || r.R.Token == "" || r.R.Values != nil || r.R.Nodes6 == "" {
		t.Fatalf("get_peers over IPv6: %+v", r.R)
	}
	r = c6.query(s.Addr6(), &msg{T: "a1", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 6006, HasPort: true, Token: r.R.Token}})
	if r.Y != "r" {
		t.Fatalf("announce over IPv6: %+v", r)
	}
	// An IPv4 announce of the same hash: each family sees only its own peers.
	r = c4.query(s.Addr(), &msg{T: "g2", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: h}})
	if r.R.Values != nil {
		t.Errorf("IPv6 peer in an IPv4 answer: %x", r.R.Values)
	}
	r = c4.query(s.Addr(), &msg{T: "a2", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 4004, HasPort: true, Token: r.R.Token}})
	if r.Y != "r" {
		t.Fatalf("announce over IPv4: %+v", r)
	}
	for _, tc := range []struct {
		c    *rawClient
		to   netip.AddrPort
		want string
	}{{c6, s.Addr6(), "[::1]:6006"}, {c4, s.Addr(), "127.0.0.3:4004"}} {
		r = tc.c.query(tc.to, &msg{T: "g3", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: h}})
		if len(r.R.Values) != 1 {
			t.Fatalf("values %x, want %s", r.R.Values, tc.want)
		}
		if p, ok := parseCompactAddr(r.R.Values[0]); !ok || p != netip.MustParseAddrPort(tc.want) {
			t.Errorf("value %x, want %s", r.R.Values[0], tc.want)
		}
	}
	// Our own GetPeers hands out both.
	var got []netip.AddrPort
	s.GetPeers(context.Background(), [20]byte([]byte(h)), func(ps []netip.AddrPort) { got = append(got, ps...) })
	if len(got) != 2 {
		t.Errorf("GetPeers found %v, want the IPv4 and the IPv6 peer", got)
	}
}

// TestIPv6ValuesFitReply: a full peer list over IPv6 stays within BEP 32's 1024 bytes.
func TestIPv6ValuesFitReply(t *testing.T) {
	s := newTestServer(t, "[::1]:0", nil)
	h := [20]byte{9}
	s.mu.Lock()
	for i := range 200 {
		s.peers.add(h, netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), uint16(1000+i)), s.cfg.now())
	}
	s.mu.Unlock()
	c := newRawClient(t, "[::1]:0")
	c.send(s.Addr(), (&msg{T: "gp", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: string(h[:])}}).encode())
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var n int
	var m *msg
	for {
		var err error
		if n, _, err = c.conn.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
		if m, err = decodeMsg(buf[:n]); err != nil || m.Y != "q" {
			break // not the server's own ping (it verifies nodes that query it): the answer
		}
	}
	if m == nil || m.R == nil || len(m.R.Values) < 30 {
		t.Fatalf("answer %q", buf[:n])
	}
	if n > maxReply {
		t.Errorf("reply of %d bytes with %d values, want at most %d", n, len(m.R.Values), maxReply)
	}
}

// TestDualStackBootstrap: a node running both DHTs that bootstraps from an IPv4 address only
// learns IPv6 nodes from nodes6 (BEP 32's "want n6" while bootstrapping).
func TestDualStackBootstrap(t *testing.T) {
	b := newDualServer(t, "127.0.0.2", nil)
	var v6only []*Server
	for range 3 {
		n := newTestServer(t, "[::1]:0", nil)
		b.AddNode(n.Addr6())
		v6only = append(v6only, n)
	}
	waitFor(t, func() bool { return b.Stats().Nodes6 == 3 })
	a := newDualServer(t, "127.0.0.1", func(c *Config) { c.Bootstrap = []string{b.Addr().String()} })
	if err := a.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return a.Stats().Nodes6 >= 3 })
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range v6only {
		if a.v6.table.find(n.ID6()) == nil {
			t.Errorf("IPv6 node %v not in the IPv6 table", n.Addr6())
		}
		if a.v4.table.find(n.ID6()) != nil {
			t.Errorf("IPv6 node %v in the IPv4 table", n.Addr6())
		}
	}
}

// TestBEP42Enforcement: with local addresses checked like public ones, a node whose id does
// not match its address stays out of the routing table, yet a lookup still asks it and takes
// its values.
func TestBEP42Enforcement(t *testing.T) {
	a := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.checkLocalIDs = true })
	good := newTestServer(t, "127.0.0.2:0", func(c *Config) { c.NodeID = makeNodeID(netip.MustParseAddr("127.0.0.2")) })
	// bad's id is the one BEP 42 derives for its address with the first byte flipped: it
	// cannot match (the first 21 bits come from the address).
	badID := makeNodeID(netip.MustParseAddr("127.0.0.3"))
	badID[0] ^= 0xff
	bad := newTestServer(t, "127.0.0.3:0", func(c *Config) { c.NodeID = badID })
	if nodeIDMatches(bad.ID(), netip.MustParseAddr("127.0.0.3")) {
		t.Fatal("the flipped id still matches its address")
	}
	good.AddNode(bad.Addr())
	waitFor(t, func() bool { return good.Stats().Nodes == 1 })
	a.AddNode(good.Addr())
	a.AddNode(bad.Addr())
	waitFor(t, func() bool { return a.Stats().Nodes == 1 })
	hash := [20]byte{4, 2}
	peer := netip.MustParseAddrPort("127.0.0.9:4242")
	bad.mu.Lock()
	bad.peers.add(hash, peer, bad.cfg.now())
	bad.mu.Unlock()
	before := bad.Stats().QueriesIn
	var got []netip.AddrPort
	if err := a.GetPeers(context.Background(), hash, func(ps []netip.AddrPort) { got = append(got, ps...) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != peer {
		t.Errorf("found %v, want the mismatching node's peer %v", got, peer)
	}
	if bad.Stats().QueriesIn == before {
		t.Error("the lookup did not ask the mismatching node")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.v4.table.find(bad.ID()) != nil || a.v4.table.find(good.ID()) == nil || a.v4.table.len() != 1 {
		t.Errorf("table holds %v, want only the matching node", a.v4.table.all())
	}
}

func TestAnnounceTargets(t *testing.T) {
	var done []*cand
	for i := range 12 {
		done = append(done, &cand{id: [20]byte{byte(i)}, token: "tok", trusted: i%3 != 0})
	}
	done[1].token = ""
	got := announceTargets(done)
	var ids []byte
	for _, c := range got {
		ids = append(ids, c.id[0])
	}
	// Trusted with a token first (2, 4, 5, 7, 8, 10, 11), then the closest others (0).
	if fmt.Sprint(ids) != fmt.Sprint([]byte{2, 4, 5, 7, 8, 10, 11, 0}) {
		t.Errorf("targets %v", ids)
	}
}

// voter is a raw node that answers every ping with the given "ip".
func voter(t *testing.T, addr string, claim netip.AddrPort) *rawClient {
	c := newRawClient(t, addr)
	go func() {
		for {
			buf := make([]byte, 2048)
			n, from, err := c.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if m, err := decodeMsg(buf[:n]); err == nil && m.Y == "q" {
				id := makeNodeID(c.addr().Addr())
				c.conn.WriteToUDPAddrPort((&msg{T: m.T, Y: "r", R: &ret{ID: string(id[:])}, IP: string(appendCompactAddr(nil, claim))}).encode(), from)
			}
		}
	}()
	return c
}

// TestExternalAddrVotes: the "ip" key of the answers elects our external address once enough
// distinct nodes agree, and our id then matches it (BEP 42); a lone liar does not.
func TestExternalAddrVotes(t *testing.T) {
	s := newDualServer(t, "127.0.0.1", func(c *Config) { c.ExternalVotes = 3 })
	id6 := s.ID6()
	public := netip.MustParseAddr("203.0.113.7")
	liar := voter(t, "127.0.0.10:0", netip.MustParseAddrPort("198.51.100.1:1"))
	s.AddNode(liar.addr())
	waitFor(t, func() bool { return s.Stats().Nodes == 1 })
	for i := range 3 {
		if ext, _ := s.ExternalAddrs(); ext.IsValid() {
			t.Fatalf("external address %v after %d votes", ext, i)
		}
		v := voter(t, fmt.Sprintf("127.0.0.%d:0", 11+i), netip.AddrPortFrom(public, 6881))
		s.AddNode(v.addr())
		waitFor(t, func() bool { return s.Stats().Nodes == 2+i })
	}
	ext, ext6 := s.ExternalAddrs()
	if ext != public || ext6.IsValid() {
		t.Fatalf("external addresses %v, %v; want %v and none", ext, ext6, public)
	}
	if !nodeIDMatches(s.ID(), public) {
		t.Errorf("id %x does not match %v", s.ID(), public)
	}
	if s.ID6() != id6 {
		t.Error("the IPv6 id changed with the IPv4 address")
	}
	// The table was rebuilt around the new id and kept its nodes.
	if n := s.Stats().Nodes; n != 4 {
		t.Errorf("%d nodes after the new id, want 4", n)
	}
	// An IPv6 address changes the IPv6 id only; a private one changes nothing.
	pub6 := netip.MustParseAddr("2001:db8:1234::5")
	s.SetExternalAddr(pub6)
	if !nodeIDMatches(s.ID6(), pub6) || !nodeIDMatches(s.ID(), public) {
		t.Error("SetExternalAddr of an IPv6 address")
	}
	before := s.ID()
	s.SetExternalAddr(netip.MustParseAddr("192.168.1.5"))
	if s.ID() != before {
		t.Error("a private external address changed the id")
	}
	// A configured id is kept.
	fixed := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.NodeID = [20]byte{1}; c.ExternalVotes = 1 })
	fixed.SetExternalAddr(public)
	if fixed.ID() != [20]byte{1} {
		t.Error("Config.NodeID was replaced")
	}
}

func TestIPVoter(t *testing.T) {
	v := newIPVoter(2)
	a, b := netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("2.2.2.2")
	voters := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	if w := v.vote(voters(1), a); w.IsValid() {
		t.Fatal("one vote elected")
	}
	if w := v.vote(voters(1), a); w.IsValid() {
		t.Fatal("a voter counted twice")
	}
	if w := v.vote(voters(2), a); w != a {
		t.Fatalf("two voters: %v", w)
	}
	// b needs more than half.
	v.vote(voters(3), b)
	if w := v.vote(voters(4), b); w.IsValid() {
		t.Fatalf("a tie elected %v", w)
	}
	if w := v.vote(voters(5), b); w != b {
		t.Fatalf("a majority did not elect: %v", w)
	}
	// A flood of voters is bounded.
	for i := range 1000 {
		v.vote(voters(100+i), a)
	}
	if len(v.claims) != maxVoters || len(v.order) != maxVoters {
		t.Errorf("%d voters remembered", len(v.claims))
	}
}

// TestNodeAddrOK: the odd IPv6 forms a nodes6 list may carry.
func TestNodeAddrOK(t *testing.T) {
	public4 := netip.MustParseAddrPort("198.51.100.1:6881")
	public6 := netip.MustParseAddrPort("[2001:db8::1]:6881")
	loop6 := netip.MustParseAddrPort("[::1]:6881")
	for _, tc := range []struct {
		addr string
		from netip.AddrPort
		v6   bool
		ok   bool
	}{
		{"[2001:db8::2]:1", public6, true, true},
		{"[::ffff:1.2.3.4]:1", public6, true, false}, // IPv4-mapped in nodes6
		{"[::1.2.3.4]:1", public6, true, false},      // IPv4-compatible
		{"[fe80::1]:1", public6, true, false},        // link-local: no zone in a compact address
		{"[fe80::1]:1", loop6, true, false},          // nor from a local node
		{"[::1]:1", public6, true, false},            // loopback from a public node
		{"[::1]:1", loop6, true, true},               // loopback from a loopback node
		{"[fd00::1]:1", public6, true, false},        // unique local from a public node
		{"[fd00::1]:1", netip.MustParseAddrPort("[fd00::9]:1"), true, true},
		{"[ff02::1]:1", public6, true, false},      // multicast
		{"[::]:1", public6, true, false},           // unspecified
		{"[2001:db8::2]:0", public6, true, false},  // port 0
		{"1.2.3.4:1", public6, true, false},        // wrong family
		{"[2001:db8::2]:1", public4, false, false}, // wrong family
		{"127.0.0.1:1", public4, false, false},     // loopback from a public node
		{"127.0.0.1:1", netip.MustParseAddrPort("127.0.0.5:1"), false, true},
		{"10.1.1.1:1", public4, false, false},
		{"10.1.1.1:1", loop6, false, true}, // the other family's loopback is as local
		{"198.51.100.9:1", public4, false, true},
	} {
		a := netip.MustParseAddrPort(tc.addr)
		if got := nodeAddrOK(a, tc.from, tc.v6, false); got != tc.ok {
			t.Errorf("nodeAddrOK(%v from %v, v6=%v) = %v, want %v", tc.addr, tc.from, tc.v6, got, tc.ok)
		}
	}
	// A zone survives no parse of a compact list, but a zoned address is refused anyway.
	if nodeAddrOK(netip.MustParseAddrPort("[2001:db8::2%eth0]:1"), public6, true, false) {
		t.Error("zoned address accepted")
	}
}

// TestHostileNodes6: a response with a nodes6 of a length not a multiple of 38 is dropped;
// odd addresses in a well-formed one are never contacted.
func TestHostileNodes6(t *testing.T) {
	s := newTestServer(t, "[::1]:0", func(c *Config) { c.QueryTimeout = 300 * time.Millisecond })
	r := newRawClient(t, "[::1]:0")
	id := "RESPONDERRESPONDER01"
	// Compact IPv6 node infos written by hand (appendCompactNodes6 would skip a mapped one).
	count := byte(0)
	node6 := func(ip string) string {
		count++
		return "NODENODENODENODENOD" + string([]byte{count}) + string(netip.MustParseAddr(ip).AsSlice()) + "\x1a\xe1"
	}
	mapped := node6("::ffff:127.0.0.1")
	for _, tc := range []struct {
		name   string
		nodes6 string
		answer bool
	}{
		{"37 bytes", string(make([]byte, 37)), false},
		{"39 bytes", mapped + "x", false},
		{"mapped, compatible, link-local, multicast", mapped + node6("::127.0.0.1") + node6("fe80::1") + node6("ff02::1"), true},
	} {
		errc := make(chan error, 1)
		go func() {
			_, err := s.lookup(context.Background(), s.v6, [20]byte{1}, false, []netip.AddrPort{r.addr()}, nil)
			errc <- err
		}()
		q := r.recv(2 * time.Second)
		if q == nil {
			t.Fatalf("%s: no query", tc.name)
		}
		st := s.Stats()
		r.send(s.Addr(), (&msg{T: q.T, Y: "r", R: &ret{ID: id, Nodes6: tc.nodes6}}).encode())
		err := <-errc
		if (err == nil) != tc.answer {
			t.Errorf("%s: lookup error %v", tc.name, err)
		}
		if !tc.answer && s.Stats().Dropped == st.Dropped {
			t.Errorf("%s: not counted as dropped", tc.name)
		}
		// No node of the list was asked: the one query is the seed's.
		if n := s.Stats().QueriesOut - st.QueriesOut; n != 0 {
			t.Errorf("%s: %d more queries, to odd addresses", tc.name, n)
		}
	}
}

// TestStateBothFamilies: both tables and both ids survive a restart; a file of the IPv4-only
// format gives the IPv6 DHT the same id.
func TestStateBothFamilies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dht.state")
	n4 := newTestServer(t, "127.0.0.2:0", nil)
	n6 := newTestServer(t, "[::1]:0", nil)
	a := newDualServer(t, "127.0.0.1", func(c *Config) { c.StatePath = path })
	a.SetExternalAddr(netip.MustParseAddr("2001:db8::77"))
	a.AddNode(n4.Addr())
	a.AddNode(n6.Addr())
	waitFor(t, func() bool { st := a.Stats(); return st.Nodes == 2 && st.Nodes6 == 1 })
	id, id6 := a.ID(), a.ID6()
	if id == id6 {
		t.Fatal("the IPv6 id did not follow the external address")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := newDualServer(t, "127.0.0.1", func(c *Config) { c.StatePath = path })
	if b.ID() != id || b.ID6() != id6 {
		t.Errorf("ids %x %x, want %x %x", b.ID(), b.ID6(), id, id6)
	}
	b.mu.Lock()
	saved4, saved6 := b.v4.saved, b.v6.saved
	b.mu.Unlock()
	if len(saved4) != 1 || saved4[0].Addr != n4.Addr() || len(saved6) != 1 || saved6[0].Addr != n6.Addr() {
		t.Errorf("saved nodes %v and %v", saved4, saved6)
	}
	if err := b.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Nodes != 2 || st.Nodes6 != 1 {
		t.Errorf("after bootstrap from the saved tables: %+v", st)
	}
	b.Close()
	// The old format: one id, odd addresses skipped.
	old := `{"id":"` + fmt.Sprintf("%x", id) + `","nodes":[{"id":"` + fmt.Sprintf("%x", id6) + `","addr":"[fe80::1%lo]:5"},` +
		`{"id":"` + fmt.Sprintf("%x", id6) + `","addr":"[::ffff:127.0.0.9]:7"}]}`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.idOf(true) != id || len(st.nodes) != 1 || st.nodes[0].Addr != netip.MustParseAddrPort("127.0.0.9:7") {
		t.Errorf("old state: id6 %x, nodes %v", st.idOf(true), st.nodes)
	}
}

// TestGivenPacketConns: the DHT runs on the non-uTP side of uTP sockets it is given, one per
// family, and other nodes reach it there.
func TestGivenPacketConns(t *testing.T) {
	before := runtime.NumGoroutine()
	u4, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer u4.Close()
	u6, err := utp.Listen("udp6", "[::1]:0", utp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer u6.Close()
	s, err := New(Config{Conn: u4.NonUTP(), Conn6: u6.NonUTP(), Bootstrap: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr().String() != u4.Addr().String() || s.Addr6().String() != u6.Addr().String() {
		t.Fatalf("DHT on %v and %v, sockets on %v and %v", s.Addr(), s.Addr6(), u4.Addr(), u6.Addr())
	}
	other := newDualServer(t, "127.0.0.2", nil)
	other.AddNode(s.Addr())
	other.AddNode(s.Addr6())
	waitFor(t, func() bool { st := s.Stats(); return st.Nodes == 2 && st.Nodes6 == 1 })
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	other.Close()
	u4.Close()
	u6.Close()
	waitGoroutines(t, before)
}

// TestListenAddresses: which DHTs an Addr runs.
func TestListenAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr, addr6 string
		v4, v6      bool
	}{
		{"127.0.0.1:0", "", true, false},
		{"[::1]:0", "", false, true},
		{"127.0.0.1:0", "[::1]:0", true, true},
		{"[::ffff:127.0.0.1]:0", "", true, false},
	} {
		s := newTestServer(t, tc.addr, func(c *Config) { c.Addr6 = tc.addr6 })
		if (s.v4 != nil) != tc.v4 || (s.v6 != nil) != tc.v6 {
			t.Errorf("%q %q: IPv4 %v, IPv6 %v", tc.addr, tc.addr6, s.v4 != nil, s.v6 != nil)
		}
		s.Close()
	}
	if _, err := New(Config{Addr: "[::1]:0", Addr6: "[::1]:0"}); err == nil {
		t.Error("two IPv6 addresses accepted")
	}
}

// TestPeerVotes: what peers say our address is (their BEP 10 "yourip") counts like the nodes'
// votes: one voter is not enough, a majority of distinct ones sets the address and the id.
func TestPeerVotes(t *testing.T) {
	s := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.ExternalVotes = 3 })
	public := netip.MustParseAddr("203.0.113.9")
	for range 3 {
		s.VoteExternalAddr(netip.MustParseAddr("198.51.100.20"), public) // the same voter thrice
	}
	if ext, _ := s.ExternalAddrs(); ext.IsValid() {
		t.Fatalf("one voter set the external address to %v", ext)
	}
	s.VoteExternalAddr(netip.MustParseAddr("198.51.100.21"), public)
	s.VoteExternalAddr(netip.MustParseAddr("::ffff:198.51.100.22"), netip.MustParseAddr("::ffff:203.0.113.9"))
	if ext, _ := s.ExternalAddrs(); ext != public || !nodeIDMatches(s.ID(), public) {
		t.Fatalf("external address %v after three voters, want %v (and a matching id)", ext, public)
	}
}
