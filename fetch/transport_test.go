package fetch

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

func TestParseTransport(t *testing.T) {
	for _, tr := range []Transport{TransportBoth, TransportUTP, TransportTCP} {
		if got, err := ParseTransport(tr.String()); err != nil || got != tr {
			t.Errorf("ParseTransport(%q) = %v, %v", tr.String(), got, err)
		}
	}
	if _, err := ParseTransport("udp"); err == nil {
		t.Error(`ParseTransport("udp") succeeded`)
	}
}

// TestListenerSockets: with both transports, TCP and UDP share the port number; with one,
// the other socket does not exist.
func TestListenerSockets(t *testing.T) {
	for _, tr := range []Transport{TransportBoth, TransportUTP, TransportTCP} {
		l, err := Listen("127.0.0.121:0", tr, ListenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().Port()
		if (l.tcp != nil) != tr.tcp() || (l.utp != nil) != tr.utp() {
			t.Errorf("%v: tcp %v, utp %v", tr, l.tcp != nil, l.utp != nil)
		}
		if l.tcp != nil && addrPortOf(l.tcp.Addr()).Port() != port || l.utp != nil && addrPortOf(l.utp.Addr()).Port() != port {
			t.Errorf("%v: sockets on different ports", tr)
		}
		c4, c6 := l.DHTConns()
		if (c4 != nil) != tr.utp() || c6 != nil {
			t.Errorf("%v: DHT conns %v %v on an IPv4 address", tr, c4, c6)
		}
		// The port of each socket is taken: a second listener on it fails.
		if _, err := Listen(l.Addr().String(), tr, ListenOptions{}); err == nil {
			t.Errorf("%v: a second listener on %v succeeded", tr, l.Addr())
		}
		l.Close()
	}
	// No host: one dual-stack socket serves both DHTs.
	l, err := Listen(":0", TransportBoth, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c4, c6 := l.DHTConns(); c4 == nil || c4 != c6 {
		t.Errorf("dual-stack: DHT conns %v %v, want one for both", c4, c6)
	}
}

// TestMixedTransportSeeders: a leecher speaking both transports downloads from a uTP-only
// seeder and a TCP-only one at once, reaching each over its transport (TCP first, uTP once TCP
// cannot connect), and both serve it.
func TestMixedTransportSeeders(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "mixed", []testswarm.File{{Path: []string{"f"}, Size: 8 << 20}}, 64<<10, 61)
	// Capped seeders: the download lasts long enough (about a second) for both to join.
	const rate = 4 << 20
	seedUTP := runNode(t, Config{ListenAddr: "127.0.0.122:0", Transport: TransportUTP, MaxUploadRate: rate}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
	seedTCP := runNode(t, Config{ListenAddr: "127.0.0.123:0", Transport: TransportTCP, MaxUploadRate: rate}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
	// The uTP-only seeder has no TCP socket and the TCP-only one no UDP socket.
	if _, err := net.DialTimeout("tcp", seedUTP.c.Addr().String(), time.Second); err == nil {
		t.Fatal("the uTP-only seeder accepts TCP")
	}
	dst := t.TempDir()
	l := startLeecherWith(t, Config{ListenAddr: "127.0.0.124:0", utpConnectTimeout: 500 * time.Millisecond}, mi, dst, filepath.Join(t.TempDir(), "rec"),
		[]netip.AddrPort{seedUTP.c.Addr(), seedTCP.c.Addr()}, TorrentOptions{Background: true})
	waitComplete(t, l, 60*time.Second)
	sameFiles(t, mi, src, dst, nil)
	// The uTP-only seeder has no TCP socket, the TCP-only one no UDP socket: what each
	// uploaded went over its transport.
	up1, up2 := seedUTP.t.Stats().Uploaded, seedTCP.t.Stats().Uploaded
	t.Logf("uploaded: uTP seeder %.1f MiB, TCP seeder %.1f MiB", float64(up1)/(1<<20), float64(up2)/(1<<20))
	if up1 == 0 || up2 == 0 {
		t.Errorf("uploaded %d bytes over uTP and %d over TCP: want both used", up1, up2)
	}
	// The candidates remember what worked: uTP for the seeder TCP could not reach (dialled
	// over uTP first next time); nothing learnt of the other, whom TCP reached first.
	l.t.mu.Lock()
	cu, ct := l.t.candidates[seedUTP.c.Addr()], l.t.candidates[seedTCP.c.Addr()]
	l.t.mu.Unlock()
	if cu == nil || cu.utp != utpWorks || ct == nil || ct.utp != utpUnknown {
		t.Errorf("candidates' uTP state: %+v, %+v; want works, unknown", cu, ct)
	}
}

// natFilter is a PacketConn that models a NAT's filtering: datagrams from an address we have
// not sent to are dropped.
type natFilter struct {
	net.PacketConn
	mu      sync.Mutex
	sent    map[netip.AddrPort]bool
	dropped atomic.Int64
}

func (f *natFilter) WriteTo(b []byte, a net.Addr) (int, error) {
	f.mu.Lock()
	f.sent[addrPortOf(a)] = true
	f.mu.Unlock()
	return f.PacketConn.WriteTo(b, a)
}

func (f *natFilter) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := f.PacketConn.ReadFrom(b)
		if err != nil {
			return n, a, err
		}
		f.mu.Lock()
		ok := f.sent[addrPortOf(a)]
		f.mu.Unlock()
		if ok {
			return n, a, nil
		}
		f.dropped.Add(1)
	}
}

// TestHolePunch (BEP 55): seeder B and leecher A sit behind NATs that drop whatever comes from
// an address they have not sent to, and speak uTP only. Both connect to relay R, which has
// nothing to give (NoUpload). R's PEX tells A of B; A's direct attempt is dropped by B's NAT,
// so A asks R for a rendezvous, R sends both a connect message, both dial at once, and A
// downloads everything from B over uTP.
func TestHolePunch(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "punch", []testswarm.File{{Path: []string{"f"}, Size: 2 << 20}}, 64<<10, 62)
	natA := &natFilter{sent: map[netip.AddrPort]bool{}}
	natB := &natFilter{sent: map[netip.AddrPort]bool{}}
	wrap := func(f *natFilter) func(net.PacketConn) net.PacketConn {
		return func(pc net.PacketConn) net.PacketConn { f.PacketConn = pc; return f }
	}
	r := startLeecherWith(t, Config{ListenAddr: "127.0.0.125:0", NoUpload: true}, mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), nil, TorrentOptions{})
	b := runNode(t, Config{ListenAddr: "127.0.0.126:0", Transport: TransportUTP, wrapUDP: wrap(natB), utpConnectTimeout: 2 * time.Second}, mi,
		TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src), Peers: []netip.AddrPort{r.c.Addr()}})
	// R's first PEX message to B (of no one) has gone out: the next comes in a minute, so B
	// does not learn of A by PEX and dial it, which could cross A's dial and open both NATs.
	waitFor(t, 10*time.Second, "B connected to R and R's first PEX to it", func() bool {
		r.t.mu.Lock()
		defer r.t.mu.Unlock()
		for p := range r.t.peers {
			if p.addr == b.c.Addr() && p.transport == "utp" && !p.ext.pexAt.IsZero() {
				return true
			}
		}
		return false
	})
	dst := t.TempDir()
	a := startLeecherWith(t, Config{ListenAddr: "127.0.0.127:0", Transport: TransportUTP, wrapUDP: wrap(natA), utpConnectTimeout: 2 * time.Second}, mi, dst,
		filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{r.c.Addr()}, TorrentOptions{Background: true})
	waitComplete(t, a, 30*time.Second)
	sameFiles(t, mi, src, dst, nil)
	// Every byte came from B (the relay uploads nothing), over uTP (A has no TCP socket; the
	// punched connection may be A's dial or B's, whichever the NATs let through first).
	if st := a.t.Stats(); st.Downloaded != mi.Info.Length {
		t.Errorf("A downloaded %d bytes, want %d", st.Downloaded, mi.Info.Length)
	}
	if r.t.Stats().Uploaded != 0 {
		t.Errorf("the relay uploaded %d bytes", r.t.Stats().Uploaded)
	}
	if natB.dropped.Load() == 0 {
		t.Error("B's NAT dropped nothing: A's direct way was open")
	}
	t.Logf("NAT drops: A %d, B %d", natA.dropped.Load(), natB.dropped.Load())
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scriptedExtPeer connects to addr over TCP as a peer whose extension handshake says it
// listens on port and offers ut_holepunch under id 7 when holepunch is set.
func scriptedExtPeer(t *testing.T, addr netip.AddrPort, mi *torrentfile.Metainfo, port int, holepunch bool) *p2p.Conn {
	t.Helper()
	opts := p2p.Options{NumPieces: mi.Info.NumPieces(), Reserved: p2p.ReservedBits(true, false, false)}
	c, _, err := p2p.Dial(t.Context(), addr, mi.InfoHash, hostilePeerID(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := p2p.ExtHandshake{M: map[string]int{}, P: port}
	if holepunch {
		h.M[p2p.ExtHolepunchName] = 7
	}
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := sendAll(c, p2p.Extended(p2p.ExtHandshakeID, b)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHolepunchRelayErrors: the relay answers a rendezvous it cannot serve with the BEP 55
// error code, and one it can with connect messages to both sides.
func TestHolepunchRelayErrors(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "relay", []testswarm.File{{Path: []string{"f"}, Size: 256 << 10}}, 64<<10, 63)
	r := startLeecherWith(t, Config{ListenAddr: "127.0.0.128:0"}, mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), nil, TorrentOptions{})
	// The scripted peers dial over TCP from 127.0.0.1 and say they listen on these ports: the
	// relay names them by that address (a TCP peer's punch address is where it listens).
	initiatorAt := netip.MustParseAddrPort("127.0.0.1:7001")
	plainAt := netip.MustParseAddrPort("127.0.0.1:7002")
	targetAt := netip.MustParseAddrPort("127.0.0.1:7003")
	initiator := scriptedExtPeer(t, r.c.Addr(), mi, 7001, true)
	scriptedExtPeer(t, r.c.Addr(), mi, 7002, false) // no ut_holepunch
	target := scriptedExtPeer(t, r.c.Addr(), mi, 7003, true)
	waitFor(t, 10*time.Second, "the relay knows the 3 peers' extension handshakes", func() bool {
		r.t.mu.Lock()
		defer r.t.mu.Unlock()
		n := 0
		for p := range r.t.peers {
			if p.ext.listenPort != 0 {
				n++
			}
		}
		return n == 3
	})
	// next reads the next ut_holepunch message c receives.
	next := func(c *p2p.Conn) p2p.HolepunchMsg {
		t.Helper()
		for {
			m, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if m.ID == p2p.MsgExtended && m.ExtendedID == 7 {
				hm, err := p2p.ParseHolepunchMsg(m.Payload)
				if err != nil {
					t.Fatal(err)
				}
				return hm
			}
		}
	}
	rendezvous := func(to netip.AddrPort) {
		t.Helper()
		b, err := p2p.HolepunchMsg{Type: p2p.HolepunchRendezvous, Addr: to}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := sendAll(initiator, p2p.Extended(p2p.LocalHolepunchID, b)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		to   netip.AddrPort
		want p2p.HolepunchErr
	}{
		{netip.MustParseAddrPort("127.0.0.129:0"), p2p.HolepunchNoSuchPeer},
		{r.c.Addr(), p2p.HolepunchNoSelf},
		{netip.MustParseAddrPort("127.0.0.129:4000"), p2p.HolepunchNotConnected},
		{plainAt, p2p.HolepunchNoSupport},
	} {
		rendezvous(tc.to)
		if m := next(initiator); m.Type != p2p.HolepunchError || m.Err != tc.want || m.Addr != tc.to {
			t.Errorf("rendezvous to %v: got %+v, want error %v", tc.to, m, tc.want)
		}
	}
	rendezvous(targetAt)
	if m := next(initiator); m.Type != p2p.HolepunchConnect || m.Addr != targetAt {
		t.Fatalf("initiator got %+v, want connect to %v", m, targetAt)
	}
	if m := next(target); m.Type != p2p.HolepunchConnect || m.Addr != initiatorAt {
		t.Errorf("target got %+v, want connect to %v", m, initiatorAt)
	}
}

// TestConnectPeerOrder: connectPeer's order and what it learns. A peer that advertised uTP is
// dialled over uTP first: a TCP-only peer then teaches utpFails (TCP reached it); an unknown
// peer is dialled over TCP first, and a uTP-only one is reached over uTP when TCP cannot
// connect (utpWorks); an address nobody listens on leaves the state as it was.
func TestConnectPeerOrder(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "order", []testswarm.File{{Path: []string{"f"}, Size: 256 << 10}}, 64<<10, 62)
	onlyUTP := runNode(t, Config{ListenAddr: "127.0.0.125:0", Transport: TransportUTP}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
	onlyTCP := runNode(t, Config{ListenAddr: "127.0.0.126:0", Transport: TransportTCP}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
	l := startLeecherWith(t, Config{ListenAddr: "127.0.0.127:0", utpConnectTimeout: 300 * time.Millisecond}, mi, t.TempDir(),
		filepath.Join(t.TempDir(), "rec"), nil, TorrentOptions{})
	nobody := netip.MustParseAddrPort("127.0.0.128:9")
	for _, tt := range []struct {
		name    string
		addr    netip.AddrPort
		state   utpState
		wantErr bool
		want    utpState
	}{
		{"advertised, TCP only", onlyTCP.c.Addr(), utpAdvertised, false, utpFails},
		{"unknown, uTP only", onlyUTP.c.Addr(), utpUnknown, false, utpWorks},
		{"unknown, TCP only", onlyTCP.c.Addr(), utpUnknown, false, utpUnknown},
		{"advertised, nobody", nobody, utpAdvertised, true, utpUnknown},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, res, err := l.c.connectPeer(ctx, tt.addr, mi.InfoHash, connectOptions{p2p: l.t.connOptions(), utp: tt.state})
		cancel()
		if conn != nil {
			conn.Close()
		}
		if (err != nil) != tt.wantErr || res.utp != tt.want {
			t.Errorf("%s: err %v, learnt uTP state %d; want error %v, state %d", tt.name, err, res.utp, tt.wantErr, tt.want)
		}
	}
}
