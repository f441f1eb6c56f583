package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

func TestParseUDPReply(t *testing.T) {
	hdr := func(action, tx uint32) []byte {
		b := make([]byte, 8)
		binary.BigEndian.PutUint32(b, action)
		binary.BigEndian.PutUint32(b[4:], tx)
		return b
	}
	be32 := func(v ...uint32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.BigEndian.AppendUint32(b, x)
		}
		return b
	}
	conn := append(hdr(0, 7), 1, 2, 3, 4, 5, 6, 7, 8)
	r, err := parseUDPReply(conn)
	if err != nil || r.action != 0 || r.txID != 7 || r.connID != 0x0102030405060708 {
		t.Errorf("connect: %+v %v", r, err)
	}
	ann := append(append(hdr(1, 9), be32(1800, 3, 2)...), 10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80, 99)
	r, err = parseUDPReply(ann)
	if err != nil || r.interval != 1800 || r.leechers != 3 || r.seeders != 2 || len(r.peers) != 13 {
		t.Errorf("announce: %+v %v", r, err)
	}
	resp := announceFromUDP(r, false, 10)
	if !slices.Equal(resp.Peers, []netip.AddrPort{ap("10.0.0.1:6881"), ap("10.0.0.2:80")}) ||
		resp.Interval != 30*time.Minute || resp.Seeders != 2 || resp.Leechers != 3 {
		t.Errorf("announce response %+v", resp)
	}
	ann6 := append(append(hdr(1, 9), be32(60, 0xffffffff, 0)...), net.ParseIP("2001:db8::7")...)
	ann6 = append(ann6, 0x1a, 0xe1)
	r, _ = parseUDPReply(ann6)
	resp = announceFromUDP(r, true, 10)
	if !slices.Equal(resp.Peers, []netip.AddrPort{ap("[2001:db8::7]:6881")}) || resp.Leechers != -1 {
		t.Errorf("IPv6 announce response %+v", resp)
	}
	scr := append(hdr(2, 1), be32(1, 2, 3, 4, 5, 6, 7)...)
	r, err = parseUDPReply(scr)
	if err != nil || !slices.Equal(r.scrape, []ScrapeResult{{1, 2, 3}, {4, 5, 6}}) {
		t.Errorf("scrape: %+v %v", r, err)
	}
	e := append(hdr(3, 5), "bad\x00thing"...)
	r, err = parseUDPReply(e)
	if err != nil || r.message != "bad?thing" {
		t.Errorf("error: %+v %v", r, err)
	}
	long := append(hdr(3, 5), strings.Repeat("x", 5000)...)
	if r, _ = parseUDPReply(long); len(r.message) != udpMaxMessageLen {
		t.Errorf("error message not truncated: %d", len(r.message))
	}
	for _, bad := range [][]byte{nil, {0, 0, 0}, hdr(0, 1), hdr(1, 1), append(hdr(1, 1), 1, 2, 3), hdr(4, 1), hdr(0xffffffff, 1)} {
		if _, err := parseUDPReply(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

func TestUDPAnnouncePacket(t *testing.T) {
	req := AnnounceRequest{Port: 6881, Uploaded: 1, Downloaded: 2, Left: 3, Event: EventStopped, Key: 0xdeadbeef}
	req.InfoHash[0], req.PeerID[19] = 0xaa, 0xbb
	b := udpAnnouncePacket(0x1122334455667788, 42, req)
	if len(b) != 98 {
		t.Fatalf("len %d", len(b))
	}
	be := binary.BigEndian
	if be.Uint64(b) != 0x1122334455667788 || be.Uint32(b[8:]) != 1 || be.Uint32(b[12:]) != 42 ||
		b[16] != 0xaa || b[55] != 0xbb || be.Uint64(b[56:]) != 2 || be.Uint64(b[64:]) != 3 ||
		be.Uint64(b[72:]) != 1 || be.Uint32(b[80:]) != 3 || be.Uint32(b[84:]) != 0 ||
		be.Uint32(b[88:]) != 0xdeadbeef || int32(be.Uint32(b[92:])) != -1 || be.Uint16(b[96:]) != 6881 {
		t.Errorf("packet %x", b)
	}
	req.NumWant = 25
	if b := udpAnnouncePacket(1, 1, req); be.Uint32(b[92:]) != 25 {
		t.Errorf("numwant %d", be.Uint32(b[92:]))
	}
	for ev, want := range map[Event]uint32{EventNone: 0, EventCompleted: 1, EventStarted: 2, EventStopped: 3} {
		if got := udpEvent(ev); got != want {
			t.Errorf("event %v = %d, want %d", ev, got, want)
		}
	}
}

// fakeUDPTracker is a scripted UDP tracker on loopback.
type fakeUDPTracker struct {
	conn *net.UDPConn
	done chan struct{}

	mu       sync.Mutex
	handler  func(pkt []byte) [][]byte // replies to send, in order; nil drops the packet
	received [][]byte
}

func newFakeUDPTracker(t *testing.T, network, addr string) *fakeUDPTracker {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUDPTracker{conn: pc.(*net.UDPConn), done: make(chan struct{})}
	f.handler = f.standard(0x0123456789abcdef, nil)
	go f.serve()
	t.Cleanup(func() {
		f.conn.Close()
		<-f.done
	})
	return f
}

func (f *fakeUDPTracker) url() string {
	return "udp://" + f.conn.LocalAddr().String() + "/announce"
}

func (f *fakeUDPTracker) serve() {
	defer close(f.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		f.mu.Lock()
		f.received = append(f.received, pkt)
		h := f.handler
		f.mu.Unlock()
		for _, r := range h(pkt) {
			_, _ = f.conn.WriteToUDPAddrPort(r, from)
		}
	}
}

func (f *fakeUDPTracker) setHandler(h func(pkt []byte) [][]byte) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

// count returns how many received packets had the given action.
func (f *fakeUDPTracker) count(action uint32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.received {
		if len(p) >= 12 && binary.BigEndian.Uint32(p[8:]) == action {
			n++
		}
	}
	return n
}

func (f *fakeUDPTracker) packets() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.received)
}

func reply(action, tx uint32, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, action)
	b = binary.BigEndian.AppendUint32(b, tx)
	for _, x := range body {
		b = append(b, x...)
	}
	return b
}

func txOf(pkt []byte) uint32 { return binary.BigEndian.Uint32(pkt[12:]) }

// standard answers connects with connID and announces and scrapes the BEP 15 way, with
// peers (compact) in announce replies. Requests with another connection id get an error.
func (f *fakeUDPTracker) standard(connID uint64, peers []byte) func([]byte) [][]byte {
	return func(p []byte) [][]byte {
		if len(p) < 16 {
			return nil
		}
		action, tx := binary.BigEndian.Uint32(p[8:]), txOf(p)
		if action == actionConnect {
			if binary.BigEndian.Uint64(p) != udpProtocolID {
				return nil
			}
			return [][]byte{reply(0, tx, binary.BigEndian.AppendUint64(nil, connID))}
		}
		if binary.BigEndian.Uint64(p) != connID {
			return [][]byte{reply(3, tx, []byte("bad connection id"))}
		}
		switch action {
		case actionAnnounce:
			return [][]byte{reply(1, tx, binary.BigEndian.AppendUint32(nil, 900), binary.BigEndian.AppendUint32(nil, 4),
				binary.BigEndian.AppendUint32(nil, 5), peers)}
		case actionScrape:
			var body []byte
			for i := 16; i+20 <= len(p); i += 20 {
				body = binary.BigEndian.AppendUint32(body, uint32(p[i])) // seeders = first hash byte
				body = binary.BigEndian.AppendUint32(body, 7)
				body = binary.BigEndian.AppendUint32(body, 1)
			}
			return [][]byte{reply(2, tx, body)}
		}
		return nil
	}
}

var testPeers = []byte{10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2, 10, 0, 0, 1, 0x1a, 0xe1}

func fastUDPClient(t *testing.T) *Client {
	return testClient(t, ClientOptions{UDPRetransmitBase: 50 * time.Millisecond, UDPMaxRetransmits: 3, Timeout: 5 * time.Second})
}

func TestUDPAnnounce(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	f.setHandler(f.standard(77, testPeers))
	c := fastUDPClient(t)
	req := AnnounceRequest{Port: 6881, Left: 10, Event: EventStarted, Key: 5}
	req.InfoHash[0] = 0xab
	for _, u := range []string{f.url(), strings.TrimSuffix(f.url(), "/announce")} {
		resp, err := c.Announce(context.Background(), u, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.AddrPort{ap("10.0.0.1:6881"), ap("10.0.0.2:6882")}
		if !slices.Equal(resp.Peers, want) || resp.Interval != 15*time.Minute || resp.Leechers != 4 || resp.Seeders != 5 {
			t.Errorf("%s: %+v", u, resp)
		}
	}
	// The connection id is reused within its lifetime.
	if n := f.count(actionConnect); n != 1 {
		t.Errorf("%d connect requests, want 1", n)
	}
	for _, p := range f.packets() {
		if binary.BigEndian.Uint32(p[8:]) == actionAnnounce {
			if len(p) != 98 || p[16] != 0xab || binary.BigEndian.Uint32(p[80:]) != 2 || binary.BigEndian.Uint16(p[96:]) != 6881 {
				t.Errorf("announce packet %x", p)
			}
		}
	}
	// Once it has expired, the client connects again.
	c.connIDLifetime = time.Nanosecond
	c.mu.Lock()
	clear(c.connIDs)
	c.mu.Unlock()
	for range 2 {
		if _, err := c.Announce(context.Background(), f.url(), req); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count(actionConnect); n != 3 {
		t.Errorf("%d connect requests, want 3", n)
	}
}

func TestUDPRetransmit(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	std := f.standard(77, testPeers)
	var mu sync.Mutex
	seen := 0
	f.setHandler(func(p []byte) [][]byte {
		mu.Lock()
		seen++
		n := seen
		mu.Unlock()
		if n <= 2 || n == 4 { // drop two connects and the first announce
			return nil
		}
		return std(p)
	})
	c := fastUDPClient(t)
	start := time.Now()
	resp, err := c.Announce(context.Background(), f.url(), AnnounceRequest{Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Waits: 50 ms, 100 ms (connect), then 200 ms (announce: n keeps growing).
	if el := time.Since(start); el < 350*time.Millisecond {
		t.Errorf("answered after %v; backoff not applied", el)
	}
	if len(resp.Peers) != 2 {
		t.Errorf("peers %v", resp.Peers)
	}
	pk := f.packets()
	if len(pk) != 5 || txOf(pk[0]) != txOf(pk[1]) || txOf(pk[1]) != txOf(pk[2]) || txOf(pk[3]) != txOf(pk[4]) {
		t.Errorf("retransmissions should repeat the transaction id: %d packets", len(pk))
	}
}

func TestUDPGivesUp(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	f.setHandler(func([]byte) [][]byte { return nil })
	c := testClient(t, ClientOptions{UDPRetransmitBase: 20 * time.Millisecond, UDPMaxRetransmits: 2})
	start := time.Now()
	_, err := c.Announce(context.Background(), f.url(), AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), "no reply after 2 retransmissions") {
		t.Fatalf("error %v", err)
	}
	if el := time.Since(start); el < 140*time.Millisecond || el > 2*time.Second {
		t.Errorf("gave up after %v, want 20+40+80 ms", el)
	}
	if n := len(f.packets()); n != 3 {
		t.Errorf("%d packets sent, want 3", n)
	}

	// The context bounds the wait even with BEP 15's 15 s base.
	c = testClient(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.Announce(ctx, f.url(), AnnounceRequest{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("error %v after %v", err, time.Since(start))
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Announce(ctx, f.url(), AnnounceRequest{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestUDPIgnoresStrayPackets(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	std := f.standard(77, testPeers)
	f.setHandler(func(p []byte) [][]byte {
		tx := txOf(p)
		good := std(p)
		action := binary.BigEndian.Uint32(p[8:])
		return append([][]byte{
			reply(action, tx+1, good[0][8:]),          // wrong transaction id
			reply(3, tx^0xffff, []byte("not yours")),  // error for another transaction
			reply((action+2)%3, tx, make([]byte, 12)), // wrong action
			{1, 2, 3},    // garbage
			reply(9, tx), // unknown action
		}, good...)
	})
	c := testClient(t, ClientOptions{UDPRetransmitBase: 5 * time.Second})
	start := time.Now()
	resp, err := c.Announce(context.Background(), f.url(), AnnounceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 2 || time.Since(start) > 2*time.Second {
		t.Errorf("%v after %v", resp.Peers, time.Since(start))
	}
	if n := len(f.packets()); n != 2 {
		t.Errorf("%d packets sent, want 2 (no retransmission)", n)
	}
}

func TestUDPErrorReply(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	std := f.standard(77, testPeers)
	c := fastUDPClient(t)
	if _, err := c.Announce(context.Background(), f.url(), AnnounceRequest{}); err != nil {
		t.Fatal(err)
	}
	// The tracker forgot our connection id: one error, then the client reconnects.
	errorsLeft := 1
	f.setHandler(func(p []byte) [][]byte {
		if binary.BigEndian.Uint32(p[8:]) == actionAnnounce && errorsLeft > 0 {
			errorsLeft--
			return [][]byte{reply(3, txOf(p), []byte("connection id expired"))}
		}
		return std(p)
	})
	if _, err := c.Announce(context.Background(), f.url(), AnnounceRequest{}); err != nil {
		t.Fatalf("retry with a new connection id failed: %v", err)
	}
	if n := f.count(actionConnect); n != 2 {
		t.Errorf("%d connects, want 2", n)
	}
	// A tracker that refuses for real.
	f.setHandler(func(p []byte) [][]byte {
		if binary.BigEndian.Uint32(p[8:]) == actionAnnounce {
			return [][]byte{reply(3, txOf(p), []byte("torrent not registered"))}
		}
		return std(p)
	})
	_, err := c.Announce(context.Background(), f.url(), AnnounceRequest{})
	var te *TrackerError
	if !errors.As(err, &te) || te.Message != "torrent not registered" {
		t.Errorf("error %v, want the tracker's message", err)
	}
	// Connect refused.
	f.setHandler(func(p []byte) [][]byte { return [][]byte{reply(3, txOf(p), []byte("go away"))} })
	c.mu.Lock()
	clear(c.connIDs)
	c.mu.Unlock()
	if _, err := c.Announce(context.Background(), f.url(), AnnounceRequest{}); !errors.As(err, &te) || te.Message != "go away" {
		t.Errorf("error %v", err)
	}
}

func TestUDPConnectionIDExpiresDuringRetransmit(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	std := f.standard(77, testPeers)
	dropped := false
	f.setHandler(func(p []byte) [][]byte {
		if binary.BigEndian.Uint32(p[8:]) == actionAnnounce && !dropped {
			dropped = true
			return nil
		}
		return std(p)
	})
	c := fastUDPClient(t)
	c.connIDLifetime = 20 * time.Millisecond
	if _, err := c.Announce(context.Background(), f.url(), AnnounceRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := f.count(actionConnect); n != 2 {
		t.Errorf("%d connects, want 2 (reconnect after the id expired)", n)
	}
}

func TestUDPScrape(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	f.setHandler(f.standard(5, nil))
	c := fastUDPClient(t)
	var hashes []torrentfile.Hash
	for i := range 100 {
		var h torrentfile.Hash
		h[0], h[1] = byte(i), 0xee
		hashes = append(hashes, h)
	}
	res, err := c.Scrape(context.Background(), f.url(), hashes)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 100 {
		t.Fatalf("%d results", len(res))
	}
	for i, h := range hashes {
		if res[h] != (ScrapeResult{Seeders: i, Completed: 7, Leechers: 1}) {
			t.Errorf("%d: %+v", i, res[h])
		}
	}
	if n := f.count(actionScrape); n != 2 {
		t.Errorf("%d scrape packets, want 2 (74 hashes each at most)", n)
	}
}

func TestUDPIPv6(t *testing.T) {
	skipWithoutIPv6(t)
	f := newFakeUDPTracker(t, "udp6", "[::1]:0")
	peers6 := append(net.ParseIP("2001:db8::1").To16(), 0x1a, 0xe1)
	f.setHandler(f.standard(1, peers6))
	c := fastUDPClient(t)
	resp, err := c.Announce(context.Background(), fmt.Sprintf("udp://[::1]:%d", f.conn.LocalAddr().(*net.UDPAddr).Port), AnnounceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Peers, []netip.AddrPort{ap("[2001:db8::1]:6881")}) {
		t.Errorf("peers %v", resp.Peers)
	}
}

// closedUDPPort returns an address on which no UDP socket listens: a port the kernel handed
// out and that was released again.
func closedUDPPort(t *testing.T, network, addr string) string {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().String()
	pc.Close()
	return a
}

// skipWithoutIPv6 skips the test when there is no IPv6 loopback (fails it in CI).
func skipWithoutIPv6(t *testing.T) {
	t.Helper()
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("no IPv6 loopback in CI: %v", err)
		}
		t.Skipf("skipping: reason: no IPv6 loopback here: %v", err)
	}
	pc.Close()
}

// logHook is a slog.Handler that calls fn with each record's message.
type logHook struct{ fn func(msg string) }

func (h logHook) Enabled(context.Context, slog.Level) bool { return true }
func (h logHook) Handle(_ context.Context, r slog.Record) error {
	h.fn(r.Message)
	return nil
}
func (h logHook) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logHook) WithGroup(string) slog.Handler      { return h }

// A closed UDP port answers with ICMP port unreachable: the announce fails at once with
// "connection refused" after one quick retry, instead of waiting BEP 15's 15·2ⁿ s schedule.
func TestUDPClosedPortRefused(t *testing.T) {
	for _, tc := range []struct{ name, network, addr string }{
		{"IPv4", "udp4", "127.0.0.1:0"},
		{"IPv6", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.network == "udp6" {
				skipWithoutIPv6(t)
			}
			hostport := closedUDPPort(t, tc.network, tc.addr)
			var mu sync.Mutex
			retries := 0
			c := testClient(t, ClientOptions{Logger: slog.New(logHook{func(msg string) {
				if strings.Contains(msg, "refused") {
					mu.Lock()
					retries++
					mu.Unlock()
				}
			}})}) // BEP 15's defaults: 15 s, 30 s, ... between retransmissions
			for _, op := range []string{"announce", "scrape"} {
				mu.Lock()
				retries = 0
				mu.Unlock()
				// The deadline is the failure condition: a refusal treated as a lost packet
				// would still be waiting for the first retransmission when it passes.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var err error
				if op == "announce" {
					_, err = c.Announce(ctx, "udp://"+hostport+"/announce", AnnounceRequest{Port: 1})
				} else {
					_, err = c.Scrape(ctx, "udp://"+hostport, []torrentfile.Hash{{1}})
				}
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s: the refusal was not noticed: %v", op, err)
				}
				if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "udp tracker "+hostport+": connection refused") {
					t.Errorf("%s: error %v, want udp tracker %s: connection refused", op, err, hostport)
				}
				mu.Lock()
				if retries != 1 {
					t.Errorf("%s: %d quick retries, want 1", op, retries)
				}
				mu.Unlock()
			}
		})
	}
}

// A tracker that refuses once and answers the quick retry (it was being restarted) is used.
func TestUDPRefusedOnceThenAnswers(t *testing.T) {
	hostport := closedUDPPort(t, "udp4", "127.0.0.1:0")
	var f *fakeUDPTracker
	c := testClient(t, ClientOptions{Logger: slog.New(logHook{func(msg string) {
		if strings.Contains(msg, "refused") && f == nil {
			f = newFakeUDPTracker(t, "udp4", hostport) // the tracker comes back
			f.setHandler(f.standard(3, testPeers))
		}
	}})})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Announce(ctx, "udp://"+hostport, AnnounceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if f == nil || len(resp.Peers) != 2 {
		t.Errorf("refused: %v, peers %v", f != nil, resp.Peers)
	}

	// Refused, then silent: the refusal is the answer, the backoff schedule is not entered.
	hostport = closedUDPPort(t, "udp4", "127.0.0.1:0")
	var g *fakeUDPTracker
	c = testClient(t, ClientOptions{UDPRetransmitBase: 50 * time.Millisecond, UDPMaxRetransmits: 3, Logger: slog.New(logHook{func(msg string) {
		if strings.Contains(msg, "refused") && g == nil {
			g = newFakeUDPTracker(t, "udp4", hostport)
			g.setHandler(func([]byte) [][]byte { return nil })
		}
	}})})
	_, err = c.Announce(ctx, "udp://"+hostport, AnnounceRequest{})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v, want connection refused", err)
	}
	if g == nil {
		t.Fatal("no quick retry")
	}
	for end := time.Now().Add(time.Second); len(g.packets()) == 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond) // the fake tracker's goroutine may still be reading
	}
	if n := len(g.packets()); n != 1 {
		t.Errorf("%d packets after the refusal, want 1 (one quick retry)", n)
	}
}

// In a tier, a UDP tracker on a closed port is failed over quickly to the next tracker,
// within the tier and across tiers, with BEP 15's default retransmission schedule.
func TestTiersUDPRefusedFailsOver(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	f.setHandler(f.standard(9, testPeers))
	closed1 := "udp://" + closedUDPPort(t, "udp4", "127.0.0.1:0") + "/announce"
	closed2 := "udp://" + closedUDPPort(t, "udp4", "127.0.0.1:0") + "/announce"
	tiers := &Tiers{tiers: [][]string{{closed1}, {closed2, f.url()}}}
	c := testClient(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, from, err := tiers.Announce(ctx, c, AnnounceRequest{})
	if err != nil || from != f.url() || len(resp.Peers) != 2 {
		t.Fatalf("%v from %s: %v", resp, from, err)
	}
	if got := tiers.All(); !slices.Equal(got, []string{closed1, f.url(), closed2}) {
		t.Errorf("order after fail-over %v", got)
	}

	// Every tracker refusing: each error says so.
	tiers = &Tiers{tiers: [][]string{{closed1}, {closed2}}}
	_, _, err = tiers.Announce(ctx, c, AnnounceRequest{})
	var all *AllFailedError
	if !errors.As(err, &all) || len(all.Errors) != 2 {
		t.Fatalf("error %v", err)
	}
	for _, e := range all.Errors {
		if !errors.Is(e, syscall.ECONNREFUSED) {
			t.Errorf("error %v, want connection refused", e)
		}
	}
}
