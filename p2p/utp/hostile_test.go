package utp

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawPeer is a plain UDP socket a test uses to speak uTP by hand.
type rawPeer struct {
	t  *testing.T
	pc *net.UDPConn
}

func newRawPeer(t *testing.T, ip string) *rawPeer {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &rawPeer{t: t, pc: pc}
}

func (r *rawPeer) send(to net.Addr, h header, payload []byte) {
	r.t.Helper()
	if _, err := r.pc.WriteTo(append(appendHeader(nil, h), payload...), to); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next uTP packet, or ok=false after wait.
func (r *rawPeer) recv(wait time.Duration) (header, []byte, net.Addr, bool) {
	r.t.Helper()
	buf := make([]byte, 65536)
	r.pc.SetReadDeadline(time.Now().Add(wait))
	n, from, err := r.pc.ReadFrom(buf)
	if err != nil {
		return header{}, nil, nil, false
	}
	h, p, err := parsePacket(buf[:n])
	if err != nil {
		r.t.Fatalf("our socket sent a bad packet: %v", err)
	}
	return h, append([]byte(nil), p...), from, true
}

// rawPeerSeq is the sequence number a rawPeer's SYN-ACK carries.
const rawPeerSeq = 100

// dial connects s to the raw peer, which answers the SYN with an ST_STATE advertising wnd.
// It returns the connection, the SYN and the address it came from.
func (r *rawPeer) dial(s *Socket, wnd uint32) (*Conn, header, net.Addr) {
	r.t.Helper()
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := s.Dial(context.Background(), r.pc.LocalAddr().(*net.UDPAddr).AddrPort())
		if err != nil {
			r.t.Error(err)
		}
		dialed <- c
	}()
	syn, _, from, ok := r.recv(5 * time.Second)
	if !ok || syn.typ != stSyn {
		r.t.Fatalf("no SYN: %+v", syn)
	}
	r.send(from, header{typ: stState, connID: syn.connID, seq: rawPeerSeq, ack: syn.seq, wnd: wnd}, nil)
	c := <-dialed
	if c == nil {
		r.t.FailNow()
	}
	return c.(*Conn), syn, from
}

// TestSeqWrapTransfer: both directions start 16 packets before the 16-bit wrap and carry
// thousands of packets across it.
func TestSeqWrapTransfer(t *testing.T) {
	cfg := Config{firstSeq: func() uint16 { return 0xfff0 }}
	a := listen(t, "127.0.0.1", cfg)
	b := listen(t, "127.0.0.2", cfg)
	ca, cb := connect(t, a, b)
	for _, c := range []*Conn{ca, cb} {
		c.mu.Lock()
		seq := c.seq
		c.mu.Unlock()
		if seq < 0xfff0 {
			t.Fatalf("sequence number %#x did not start near the wrap", seq)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		transfer(t, cb, ca, randomBytes(8<<20, 5), 30*time.Second)
	}()
	transfer(t, ca, cb, randomBytes(8<<20, 4), 30*time.Second) // 6000 packets: wraps
	<-done
}

// TestSYNFlood: thousands of SYNs with distinct ids hold at most MaxHalfOpen connections,
// which expire; a real connection succeeds afterwards.
func TestSYNFlood(t *testing.T) {
	s := listen(t, "127.0.0.2", Config{MaxHalfOpen: 16, HalfOpenTimeout: 300 * time.Millisecond})
	raw := newRawPeer(t, "127.0.0.3")
	for i := 0; i < 5000; i++ {
		raw.send(s.Addr(), header{typ: stSyn, connID: uint16(i), seq: 1, wnd: 1 << 20}, nil)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().SYNDropped < 5000-16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	if st.HalfOpen > 16 || st.Conns > 16 || st.SYNDropped < 5000-16 {
		t.Fatalf("after the flood: %+v", st)
	}
	for s.Stats().Conns > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Stats(); st.Conns != 0 || st.HalfOpen != 0 {
		t.Fatalf("half-open connections did not expire: %+v", st)
	}
	a := listen(t, "127.0.0.1", Config{})
	ca, cb := connect(t, a, s)
	transfer(t, ca, cb, randomBytes(64<<10, 6), 10*time.Second)
}

// TestZeroWindowTimeout: a peer that acknowledges everything with a window of 0 is probed,
// then dropped with ErrZeroWindow, and leaves the socket.
func TestZeroWindowTimeout(t *testing.T) {
	s := listen(t, "127.0.0.1", Config{MinRTO: 50 * time.Millisecond, ZeroWindowTimeout: 600 * time.Millisecond})
	raw := newRawPeer(t, "127.0.0.2")
	c, syn, from := raw.dial(s, 0)
	if _, err := c.Write(make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	probes := 0
	for {
		h, p, _, ok := raw.recv(3 * time.Second)
		if !ok {
			break
		}
		if h.typ == stReset {
			break
		}
		if h.typ == stData {
			probes++
			if len(p) > 1 && probes == 1 {
				t.Fatalf("sent %d bytes into a closed window", len(p))
			}
			// Acknowledge nothing new, keep the window shut.
			raw.send(from, header{typ: stState, connID: syn.connID, seq: rawPeerSeq, ack: syn.seq, wnd: 0}, nil)
		}
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrZeroWindow) {
		t.Fatalf("read: %v, want ErrZeroWindow", err)
	}
	if probes == 0 {
		t.Fatal("the closed window was never probed")
	}
	if st := s.Stats(); st.Conns != 0 {
		t.Fatalf("connection still in the socket: %+v", st)
	}
}

// TestWrongConnectionID: packets for no connection are answered with ST_RESET (naming the
// id and sequence number they carried); a RESET with a stranger's id, or from another
// address, does not hurt a live connection.
func TestWrongConnectionID(t *testing.T) {
	a := listen(t, "127.0.0.1", Config{})
	b := listen(t, "127.0.0.2", Config{})
	ca, cb := connect(t, a, b)
	raw := newRawPeer(t, "127.0.0.3")

	raw.send(b.Addr(), header{typ: stData, connID: 4242, seq: 77, ack: 1, wnd: 1000}, []byte("hi"))
	h, _, _, ok := raw.recv(2 * time.Second)
	if !ok || h.typ != stReset || h.connID != 4242 || h.ack != 77 {
		t.Fatalf("answer to an unknown id: %+v (ok=%v)", h, ok)
	}
	// The live connection's own ids, but from another address.
	raw.send(b.Addr(), header{typ: stData, connID: cb.recvID, seq: cb.ack + 1, wnd: 1000}, []byte("x"))
	if h, _, _, ok := raw.recv(2 * time.Second); !ok || h.typ != stReset {
		t.Fatalf("answer to a stranger using a live id: %+v", h)
	}
	raw.send(b.Addr(), header{typ: stReset, connID: cb.recvID}, nil)
	raw.send(b.Addr(), header{typ: stReset, connID: cb.sendID}, nil)
	// Packets that are not uTP at all are not answered.
	raw.pc.WriteTo([]byte("d1:q4:pinge"), b.Addr())
	if h, _, _, ok := raw.recv(200 * time.Millisecond); ok {
		t.Fatalf("answered a non-uTP datagram: %+v", h)
	}
	if b.Stats().UnknownConn != 2 || b.Stats().ResetsSent != 2 {
		t.Fatalf("stats %+v", b.Stats())
	}
	transfer(t, ca, cb, randomBytes(1<<20, 7), 10*time.Second)
}

// TestResetEndsConnection: a RESET from the peer's address with the right id ends the
// connection with ErrReset.
func TestResetEndsConnection(t *testing.T) {
	a := listen(t, "127.0.0.1", Config{})
	b := listen(t, "127.0.0.2", Config{})
	ca, cb := connect(t, a, b)
	cb.mu.Lock()
	cb.failLocked(ErrReset, true) // sends ST_RESET to a
	cb.mu.Unlock()
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ca.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Fatalf("read: %v, want ErrReset", err)
	}
}

// TestPeerVanishes: when every packet to the peer is lost, retransmissions back off and the
// connection ends with ErrTimedOut.
func TestPeerVanishes(t *testing.T) {
	cfg := Config{MinRTO: 30 * time.Millisecond, MaxRetransmits: 3}
	la := newLossyConn(t, "127.0.0.1", 0, 0, 1)
	a := NewSocket(la, cfg)
	t.Cleanup(func() { a.Close() })
	b := listen(t, "127.0.0.2", cfg)
	ca, _ := connect(t, a, b)
	la.mu.Lock()
	la.loss = 1
	la.mu.Unlock()
	start := time.Now()
	if _, err := ca.Write(make([]byte, 100000)); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ca.Read(make([]byte, 1)); !errors.Is(err, ErrTimedOut) {
		t.Fatalf("read: %v, want ErrTimedOut", err)
	}
	if st := ca.Stats(); st.Timeouts != 4 {
		t.Fatalf("timeouts %d, want 4", st.Timeouts)
	}
	t.Logf("dropped after %v", time.Since(start))
}

// TestDeadlines: Read and Write give os.ErrDeadlineExceeded (a net.Error timeout) after
// their deadlines, and work again once the deadline moves.
func TestDeadlines(t *testing.T) {
	a := listen(t, "127.0.0.1", Config{SendBuffer: 64 << 10})
	b := listen(t, "127.0.0.2", Config{RecvBuffer: 64 << 10})
	ca, cb := connect(t, a, b)
	ca.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := ca.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v", err)
	}
	// Nobody reads cb: the windows fill and Write blocks until its deadline.
	ca.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := ca.Write(make([]byte, 1<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 1<<20 {
		t.Fatalf("write: %d, %v", n, err)
	}
	ca.SetDeadline(time.Time{})
	go func() { ca.Write([]byte("end")); ca.Close() }()
	got, err := io.ReadAll(cb)
	if err != nil || len(got) != n+3 {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, n+3)
	}
}

// TestNonUTPHandoff: datagrams that are not uTP reach NonUTP's reader, and its writes leave
// from the shared port.
func TestNonUTPHandoff(t *testing.T) {
	s := listen(t, "127.0.0.1", Config{})
	other := s.NonUTP()
	raw := newRawPeer(t, "127.0.0.2")
	msg := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
	raw.pc.WriteTo(msg, s.Addr())
	buf := make([]byte, 1500)
	other.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := other.ReadFrom(buf)
	if err != nil || string(buf[:n]) != string(msg) {
		t.Fatalf("got %q from %v: %v", buf[:n], from, err)
	}
	if _, err := other.WriteTo([]byte("d1:y1:re"), from); err != nil {
		t.Fatal(err)
	}
	raw.pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, src, err := raw.pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "d1:y1:re" || src.String() != s.Addr().String() {
		t.Fatalf("reply %q from %v: %v", buf[:n], src, err)
	}
}

// TestWindowUpdateIsNotDuplicateAck: ACKs that repeat the last acknowledgement while opening
// the peer's window are window updates (the peer's application read), and three of them do
// not set off a fast retransmission; three that leave the window alone do.
func TestWindowUpdateIsNotDuplicateAck(t *testing.T) {
	s := listen(t, "127.0.0.1", Config{MinRTO: 10 * time.Second})
	raw := newRawPeer(t, "127.0.0.2")
	c, syn, from := raw.dial(s, 100000)
	ack := func(wnd uint32) {
		raw.send(from, header{typ: stState, connID: syn.connID, seq: rawPeerSeq, ack: syn.seq, wnd: wnd}, nil)
	}
	if _, err := c.Write(make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	first, _, _, ok := raw.recv(5 * time.Second)
	if !ok || first.typ != stData || first.seq != syn.seq+1 {
		t.Fatalf("first data packet: %+v", first)
	}
	raw.recv(time.Second) // the second one
	for _, wnd := range []uint32{200000, 300000, 400000} {
		ack(wnd)
	}
	if h, _, _, ok := raw.recv(300 * time.Millisecond); ok {
		t.Fatalf("window updates set off a retransmission: %+v", h)
	}
	for range dupAckThreshold {
		ack(400000)
	}
	h, _, _, ok := raw.recv(2 * time.Second)
	if !ok || h.typ != stData || h.seq != first.seq {
		t.Fatalf("three duplicate ACKs: got %+v (ok=%v), want a retransmission of %d", h, ok, first.seq)
	}
	if st := c.Stats(); st.Retransmits != 1 {
		t.Fatalf("retransmits %d, want 1", st.Retransmits)
	}
}
