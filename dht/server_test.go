package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DHT_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// newTestServer starts a node on addr (e.g. "127.0.0.5:0") with no bootstrap nodes and fast
// timeouts; it is closed when the test ends.
func newTestServer(t testing.TB, addr string, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Addr: addr, Bootstrap: []string{}, QueryTimeout: 500 * time.Millisecond, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitGoroutines waits until the goroutine count is back to at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient is a UDP socket speaking KRPC by hand.
type rawClient struct {
	t    testing.TB
	conn *net.UDPConn
}

func newRawClient(t testing.TB, addr string) *rawClient {
	t.Helper()
	network := "udp4"
	if strings.HasPrefix(addr, "[") {
		network = "udp6"
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &rawClient{t: t, conn: pc.(*net.UDPConn)}
}

func (c *rawClient) send(to netip.AddrPort, b []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort(b, to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next message, or nil after the timeout.
func (c *rawClient) recv(timeout time.Duration) *msg {
	c.t.Helper()
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := c.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil
	}
	m, err := decodeMsg(buf[:n])
	if err != nil {
		c.t.Fatalf("server sent undecodable %q: %v", buf[:n], err)
	}
	return m
}

func (c *rawClient) query(to netip.AddrPort, m *msg) *msg {
	c.t.Helper()
	c.send(to, m.encode())
	r := c.recv(2 * time.Second)
	for r != nil && r.Y == "q" { // the server's own pings (it verifies nodes that query it)
		r = c.recv(2 * time.Second)
	}
	if r == nil {
		c.t.Fatalf("no answer to %s", m.Q)
	}
	if r.T != m.T {
		c.t.Fatalf("answer with transaction id %q, want %q", r.T, m.T)
	}
	return r
}

var clientID = "CLIENTIDCLIENTID0001"

func TestServerQueries(t *testing.T) {
	s := newTestServer(t, "127.0.0.1:0", nil)
	c := newRawClient(t, "127.0.0.1:0")
	to := s.Addr()
	sid := s.ID()

	r := c.query(to, &msg{T: "p1", Y: "q", Q: "ping", A: &args{ID: clientID}})
	if r.Y != "r" || r.R.ID != string(sid[:]) {
		t.Fatalf("ping answer %+v", r)
	}
	r = c.query(to, &msg{T: "f1", Y: "q", Q: "find_node", A: &args{ID: clientID, Target: clientID}})
	if r.Y != "r" || len(r.R.Nodes)%26 != 0 {
		t.Fatalf("find_node answer %+v", r)
	}
	h := "HASHHASHHASHHASHHASH"
	r = c.query(to, &msg{T: "g1", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: h}})
	if r.Y != "r" || r.R.Token == "" || r.R.Values != nil {
		t.Fatalf("get_peers answer %+v", r)
	}
	token := r.R.Token
	// Bad token: 203.
	r = c.query(to, &msg{T: "a0", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 4000, HasPort: true, Token: "nottoken"}})
	if r.Y != "e" || r.E.Code != 203 {
		t.Fatalf("announce with a bad token: %+v", r)
	}
	r = c.query(to, &msg{T: "a1", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 4000, HasPort: true, Token: token}})
	if r.Y != "r" {
		t.Fatalf("announce: %+v", r)
	}
	// implied_port: the UDP source port is stored.
	r = c.query(to, &msg{T: "a2", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 1, HasPort: true, ImpliedPort: true, Token: token}})
	if r.Y != "r" {
		t.Fatalf("announce with implied_port: %+v", r)
	}
	r = c.query(to, &msg{T: "g2", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: h}})
	got := map[netip.AddrPort]bool{}
	for _, v := range r.R.Values {
		p, _ := parseCompactAddr(v)
		got[p] = true
	}
	myPort := c.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	if len(got) != 2 || !got[netip.MustParseAddrPort("127.0.0.1:4000")] || !got[netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), myPort)] {
		t.Errorf("values = %v", got)
	}
	// Errors 203 and 204.
	for _, tc := range []struct {
		m    *msg
		code int64
	}{
		{&msg{T: "e1", Y: "q", Q: "ping", A: &args{ID: "short"}}, 203},
		{&msg{T: "e2", Y: "q", Q: "find_node", A: &args{ID: clientID, Target: "short"}}, 203},
		{&msg{T: "e3", Y: "q", Q: "get_peers", A: &args{ID: clientID}}, 203},
		{&msg{T: "e4", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Token: token}}, 203},
		{&msg{T: "e5", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 70000, HasPort: true, Token: token}}, 203},
		{&msg{T: "e6", Y: "q", Q: "vote", A: &args{ID: clientID}}, 204},
	} {
		r := c.query(to, tc.m)
		if r.Y != "e" || r.E.Code != tc.code {
			t.Errorf("%s %+v: answer %+v, want error %d", tc.m.Q, tc.m.A, r, tc.code)
		}
	}
	if st := s.Stats(); st.Peers != 2 || st.InfoHashes != 1 || st.QueriesIn < 10 {
		t.Errorf("stats %+v", st)
	}
}

func TestServerHostileInput(t *testing.T) {
	s := newTestServer(t, "127.0.0.1:0", nil)
	c := newRawClient(t, "127.0.0.1:0")
	to := s.Addr()
	bad := []string{
		"",
		"garbage",
		"d1:t2:aa1:y1:qe",
		"d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe",
		"d1:rd2:id20:mnopqrstuvwxyz1234565:nodes9:def456...e1:t2:aa1:y1:re", // not a multiple of 26
		"d1:rd2:id5:shorte1:t2:aa1:y1:re",
		"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:zz1:y1:re", // unsolicited response
		"d1:eli201e1:xe1:t2:aa1:y1:ee",
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe" + strings.Repeat("x", 1000),
		strings.Repeat("l", 10000),
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t" + strings.Repeat("9", 30) + ":x1:y1:qe",
		"d1:ad2:id20:abcdefghij01234567895:nodes" + fmt.Sprint(maxPacket*2) + ":" + strings.Repeat("n", maxPacket*2) + "e1:q4:ping1:t2:aa1:y1:qe", // huge
	}
	for _, b := range bad {
		c.send(to, []byte(b))
	}
	if m := c.recv(300 * time.Millisecond); m != nil && m.Y != "q" {
		t.Errorf("answer to a malformed packet: %+v", m)
	}
	// Still alive.
	if r := c.query(to, &msg{T: "ok", Y: "q", Q: "ping", A: &args{ID: clientID}}); r.Y != "r" {
		t.Fatalf("ping after garbage: %+v", r)
	}
	if st := s.Stats(); st.Dropped < uint64(len(bad))-1 { // "" may not even arrive as a datagram
		t.Errorf("dropped %d of %d bad packets", st.Dropped, len(bad))
	}
}

func TestServerRateLimit(t *testing.T) {
	s := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.QueriesPerSecondPerIP = 1; c.BurstPerIP = 10 })
	c := newRawClient(t, "127.0.0.1:0")
	ping := (&msg{T: "pp", Y: "q", Q: "ping", A: &args{ID: clientID}}).encode()
	for range 100 {
		c.send(s.Addr(), ping)
	}
	n := 0
	for m := c.recv(300 * time.Millisecond); m != nil; m = c.recv(300 * time.Millisecond) {
		if m.T == "pp" {
			n++
		}
	}
	if n < 10 || n > 15 {
		t.Errorf("%d answers to a flood of 100 with burst 10", n)
	}
	if st := s.Stats(); st.RateLimited < 80 {
		t.Errorf("rate limited %d", st.RateLimited)
	}
}

func TestResponseFromWrongAddressIgnored(t *testing.T) {
	s := newTestServer(t, "127.0.0.1:0", nil)
	target := newRawClient(t, "127.0.0.1:0")
	intruder := newRawClient(t, "127.0.0.2:0")
	done := make(chan error, 1)
	taddr := target.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	go func() {
		_, err := s.query(context.Background(), taddr, "ping", &args{}, 1)
		done <- err
	}()
	q := target.recv(2 * time.Second)
	if q == nil || q.Q != "ping" {
		t.Fatalf("no ping received: %+v", q)
	}
	// The intruder answers first, with the right transaction id: ignored.
	intruder.send(s.Addr(), (&msg{T: q.T, Y: "r", R: &ret{ID: "INTRUDERINTRUDERINTR"}}).encode())
	time.Sleep(50 * time.Millisecond)
	target.send(s.Addr(), (&msg{T: q.T, Y: "r", R: &ret{ID: "TARGETTARGETTARGET01"}}).encode())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v4.table.find([20]byte([]byte("TARGETTARGETTARGET01"))) == nil || s.v4.table.find([20]byte([]byte("INTRUDERINTRUDERINTR"))) != nil {
		t.Error("wrong node in the table")
	}
}

func TestQueryTimeoutAndRetry(t *testing.T) {
	s := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.QueryTimeout = 100 * time.Millisecond })
	silent := newRawClient(t, "127.0.0.1:0")
	addr := silent.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	_, err := s.query(context.Background(), addr, "ping", &args{}, 3)
	if !errors.Is(err, errTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	tids := map[string]bool{}
	for m := silent.recv(50 * time.Millisecond); m != nil; m = silent.recv(50 * time.Millisecond) {
		tids[m.T] = true
	}
	if len(tids) != 3 {
		t.Errorf("%d attempts with distinct transaction ids, want 3", len(tids))
	}
	// A KRPC error answer comes back as *Error.
	go func() {
		m := silent.recv(2 * time.Second)
		if m != nil {
			silent.send(s.Addr(), (&msg{T: m.T, Y: "e", E: &Error{Code: 202, Msg: "Server Error"}}).encode())
		}
	}()
	_, err = s.query(context.Background(), addr, "ping", &args{}, 1)
	var ke *Error
	if !errors.As(err, &ke) || ke.Code != 202 {
		t.Errorf("err = %v, want krpc error 202", err)
	}
}

func TestStateSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "dht.json")
	a := newTestServer(t, "127.0.0.1:0", nil)
	b := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.StatePath = path })
	b.AddNode(a.Addr())
	waitFor(t, func() bool { return b.Stats().Nodes == 1 })
	id := b.ID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Reloaded: same id, and the saved node bootstraps the table.
	c := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.StatePath = path })
	if c.ID() != id {
		t.Errorf("id %x, want the saved %x", c.ID(), id)
	}
	if err := c.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Stats().Nodes != 1 {
		t.Errorf("%d nodes after bootstrap from the saved table", c.Stats().Nodes)
	}
	// A corrupt state file is ignored, not fatal.
	if err := os.WriteFile(path, []byte("{corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.StatePath = path })
	if d.ID() == id {
		t.Error("id taken from a corrupt file")
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "sub", "*.tmp*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAddNodeAndQueriedNodeVerified(t *testing.T) {
	a := newTestServer(t, "127.0.0.1:0", nil)
	b := newTestServer(t, "127.0.0.1:0", nil)
	a.AddNode(b.Addr())
	// a pinged b: b learns a (a answers b's verification ping), and a learns b.
	waitFor(t, func() bool { return a.Stats().Nodes == 1 && b.Stats().Nodes == 1 })
	// A node that does not answer is not added.
	silent := newRawClient(t, "127.0.0.1:0")
	a.AddNode(silent.conn.LocalAddr().(*net.UDPAddr).AddrPort())
	time.Sleep(1200 * time.Millisecond)
	if n := a.Stats().Nodes; n != 1 {
		t.Errorf("%d nodes, want 1", n)
	}
}

// TestSwarm runs 32 nodes on 127.0.0.1..32, bootstrapped in a chain; a peer announced by one
// node is found by a lookup from another.
func TestSwarm(t *testing.T) {
	before := runtime.NumGoroutine()
	const n = 32
	nodes := make([]*Server, n)
	for i := range nodes {
		s, err := New(Config{
			Addr:      fmt.Sprintf("127.0.0.%d:0", i+1),
			Bootstrap: []string{},
			Logger:    testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = s
		defer s.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i < n; i++ {
		nodes[i].cfg.Bootstrap = []string{nodes[i-1].Addr().String()}
		if err := nodes[i].Bootstrap(ctx); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	// Node 0 learnt of the others as they queried it; a second round spreads knowledge.
	for i := range n {
		if err := nodes[i].Bootstrap(ctx); err != nil {
			t.Fatalf("node %d second bootstrap: %v", i, err)
		}
	}
	total := 0
	for _, s := range nodes {
		total += s.Stats().Nodes
	}
	t.Logf("average routing table size %.1f", float64(total)/n)

	hash := [20]byte{0xde, 0xad, 0xbe, 0xef}
	announcer := nodes[n-1]
	if err := announcer.Announce(ctx, hash, 5555, nil); err != nil {
		t.Fatal(err)
	}
	want := netip.AddrPortFrom(announcer.Addr().Addr(), 5555)
	stored := 0
	for _, s := range nodes {
		stored += s.Stats().Peers
	}
	if stored < 3 {
		t.Errorf("announce stored at %d nodes", stored)
	}
	for _, from := range []int{0, 7, n / 2} {
		var mu sync.Mutex
		var got []netip.AddrPort
		err := nodes[from].GetPeers(ctx, hash, func(ps []netip.AddrPort) {
			mu.Lock()
			got = append(got, ps...)
			mu.Unlock()
		})
		if err != nil {
			t.Fatalf("GetPeers from node %d: %v", from, err)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("GetPeers from node %d found %v, want [%v]", from, got, want)
		}
	}
	// An unannounced hash finds nothing, and still converges.
	if err := nodes[3].GetPeers(ctx, [20]byte{1}, func(ps []netip.AddrPort) { t.Errorf("peers for an unannounced hash: %v", ps) }); err != nil {
		t.Errorf("GetPeers of an unknown hash: %v", err)
	}
	for _, s := range nodes {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
	waitGoroutines(t, before)
}

func TestLookupCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(Config{Addr: "127.0.0.1:0", Bootstrap: []string{}, QueryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Seeds that never answer: the lookup waits until ctx ends.
	var silent []string
	for range 5 {
		silent = append(silent, newRawClient(t, "127.0.0.1:0").conn.LocalAddr().String())
	}
	s.cfg.Bootstrap = silent
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Bootstrap(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("lookup took %v after its context ended", el)
	}
	if err := s.GetPeers(context.Background(), [20]byte{}, nil); !errors.Is(err, ErrNoNodes) {
		t.Errorf("GetPeers with an empty table: %v, want ErrNoNodes", err)
	}
	// Close during a lookup ends it.
	s.cfg.Bootstrap = silent
	errc := make(chan error, 1)
	go func() { errc <- s.Bootstrap(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Bootstrap succeeded without answers")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Bootstrap did not end at Close")
	}
	waitGoroutines(t, before)
}

// fakeClock is a settable clock for Config.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestMaintenance checks what the maintenance loop does as time passes: stale buckets are
// refreshed with a find_node lookup, announced peers expire, tokens rotate.
func TestMaintenance(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	a := newTestServer(t, "127.0.0.1:0", func(c *Config) { c.now = clock.now; c.maintenanceInterval = 10 * time.Millisecond })
	b := newTestServer(t, "127.0.0.2:0", nil)
	a.AddNode(b.Addr())
	waitFor(t, func() bool { return a.Stats().Nodes == 1 })

	// A peer announced to a, with a token of the current secret.
	c := newRawClient(t, "127.0.0.3:0")
	h := "HASHHASHHASHHASHHASH"
	r := c.query(a.Addr(), &msg{T: "g", Y: "q", Q: "get_peers", A: &args{ID: clientID, InfoHash: h}})
	token := r.R.Token
	if r = c.query(a.Addr(), &msg{T: "a", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 7, HasPort: true, Token: token}}); r.Y != "r" {
		t.Fatalf("announce: %+v", r)
	}
	if a.Stats().Peers != 1 {
		t.Fatal("peer not stored")
	}

	before := b.Stats().QueriesIn
	clock.advance(16 * time.Minute)
	// The bucket is refreshed: b gets a find_node; the token has rotated twice over (refused);
	// the peer is still there (30 minutes).
	waitFor(t, func() bool { return b.Stats().QueriesIn > before })
	if r = c.query(a.Addr(), &msg{T: "a2", Y: "q", Q: "announce_peer", A: &args{ID: clientID, InfoHash: h, Port: 7, HasPort: true, Token: token}}); r.Y != "e" || r.E.Code != 203 {
		t.Errorf("16-minute-old token: %+v", r)
	}
	if a.Stats().Peers != 1 {
		t.Error("peer expired after 16 minutes")
	}
	clock.advance(15 * time.Minute)
	waitFor(t, func() bool { return a.Stats().Peers == 0 && a.Stats().InfoHashes == 0 })
}
