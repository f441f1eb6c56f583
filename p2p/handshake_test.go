package p2p

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var (
	testHash  = [20]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	otherHash = [20]byte{0: 0xee, 19: 0xee}
	peerA     = [20]byte{'-', 'G', 'T', '0', '0', '0', '1', '-', 'a'}
	peerB     = [20]byte{'-', 'G', 'T', '0', '0', '0', '1', '-', 'b'}
)

// listen starts a listener on loopback whose connections are handled by serve, each on
// its own goroutine; the test waits for them at cleanup.
func listen(t *testing.T, serve func(nc net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(nc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// acceptResult carries what Accept returned on the listening side.
type acceptResult struct {
	c   *Conn
	h   Handshake
	err error
}

// acceptOne listens, runs Accept with our peer id and opts for testHash, and sends the
// result on the returned channel.
func acceptOne(t *testing.T, id [20]byte, opts Options) (netip.AddrPort, chan acceptResult) {
	ch := make(chan acceptResult, 1)
	addr := listen(t, func(nc net.Conn) {
		c, h, err := Accept(nc, id, func(ih [20]byte) (Options, bool) { return opts, ih == testHash })
		ch <- acceptResult{c, h, err}
	})
	return addr, ch
}

func TestDialAccept(t *testing.T) {
	optsB := testOpts()
	optsB.Reserved = ReservedBits(true, true, true)
	addr, ch := acceptOne(t, peerB, optsB)
	optsA := testOpts()
	optsA.Reserved = ReservedBits(true, false, true)
	a, hA, err := Dial(context.Background(), addr, testHash, peerA, optsA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	b, hB := r.c, r.h
	defer b.Close()
	if hA.PeerID != peerB || hA.InfoHash != testHash || !hA.SupportsExtensions() || !hA.SupportsDHT() || !hA.SupportsFast() {
		t.Fatalf("dialer saw %+v", hA)
	}
	if hB.PeerID != peerA || hB.InfoHash != testHash || !hB.SupportsExtensions() || hB.SupportsDHT() || !hB.SupportsFast() {
		t.Fatalf("acceptor saw %+v", hB)
	}
	if !a.FastEnabled() || !b.FastEnabled() {
		t.Fatal("fast extension not negotiated")
	}
	if a.RemoteAddr() != addr || !b.RemoteAddr().Addr().IsLoopback() {
		t.Fatalf("remote addresses %v %v", a.RemoteAddr(), b.RemoteAddr())
	}
	// Messages both ways.
	if err := a.WriteMessage(Request(1, 0, BlockSize)); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteMessage(HaveNone()); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := b.ReadMessage(); err != nil || m.ID != MsgRequest || m.Index != 1 || m.Length != BlockSize {
		t.Fatalf("b read %v, %v", m, err)
	}
	if m, err := b.ReadMessage(); err != nil || m.ID != MsgHaveNone {
		t.Fatalf("b read %v, %v", m, err)
	}
	block := make([]byte, BlockSize)
	block[5] = 7
	if err := b.WriteMessage(Piece(1, 0, block)); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := a.ReadMessage(); err != nil || m.ID != MsgPiece || len(m.Payload) != BlockSize || m.Payload[5] != 7 {
		t.Fatalf("a read %v, %v", m, err)
	}
	a.Close()
	if _, err := b.ReadMessage(); !errors.Is(err, io.EOF) || errors.Is(err, ErrProtocol) {
		t.Fatalf("after close: %v, want io.EOF", err)
	}
}

func TestFastNotNegotiated(t *testing.T) {
	optsB := testOpts()
	optsB.Reserved = ReservedBits(true, false, true)
	addr, ch := acceptOne(t, peerB, optsB)
	a, _, err := Dial(context.Background(), addr, testHash, peerA, testOpts()) // no fast bit
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if a.FastEnabled() || r.c.FastEnabled() {
		t.Fatal("fast negotiated although the dialer did not set the bit")
	}
	// A fast message is then a protocol violation.
	if err := a.WriteMessage(HaveAll()); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.ReadMessage(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("have all without fast: %v, want ErrProtocol", err)
	}
}

// rawHandshake is a handshake as a tiny in-test peer would send it.
func rawHandshake(pstr string, infoHash, peerID [20]byte) []byte {
	b := []byte{byte(len(pstr))}
	b = append(b, pstr...)
	b = append(b, make([]byte, 8)...)
	b = append(b, infoHash[:]...)
	return append(b, peerID[:]...)
}

// tinyPeer listens and answers each connection by reading 68 bytes then writing reply.
func tinyPeer(t *testing.T, reply []byte) netip.AddrPort {
	return listen(t, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, HandshakeLen)
		if _, err := io.ReadFull(nc, buf); err != nil {
			return
		}
		nc.Write(reply)
	})
}

func TestDialBadAnswers(t *testing.T) {
	good := rawHandshake(protocolString, testHash, peerB)
	cases := []struct {
		name  string
		reply []byte
		is    []error
	}{
		{"wrong info hash", rawHandshake(protocolString, otherHash, peerB), []error{ErrProtocol, ErrInfoHashMismatch}},
		{"truncated", good[:30], []error{ErrProtocol, io.ErrUnexpectedEOF}},
		{"truncated before peer id", good[:48], []error{ErrProtocol}},
		{"nothing", nil, []error{ErrProtocol, io.EOF}},
		{"wrong protocol string", rawHandshake("BitTorrent protocoX", testHash, peerB), []error{ErrProtocol}},
		{"wrong protocol length", rawHandshake("BitTorrent protocol!", testHash, peerB)[:68], []error{ErrProtocol}},
		{"self", rawHandshake(protocolString, testHash, peerA), []error{ErrSelfConnection}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := tinyPeer(t, c.reply)
			conn, _, err := Dial(context.Background(), addr, testHash, peerA, testOpts())
			if err == nil {
				conn.Close()
				t.Fatal("Dial succeeded")
			}
			for _, target := range c.is {
				if !errors.Is(err, target) {
					t.Errorf("error %q does not wrap %q", err, target)
				}
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		conn, h, err := Dial(context.Background(), tinyPeer(t, good), testHash, peerA, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if h.PeerID != peerB {
			t.Fatalf("peer id %x", h.PeerID)
		}
	})
}

func TestSelfConnection(t *testing.T) {
	addr, ch := acceptOne(t, peerA, testOpts())
	_, _, err := Dial(context.Background(), addr, testHash, peerA, testOpts())
	if !errors.Is(err, ErrSelfConnection) {
		t.Fatalf("dialer: %v, want ErrSelfConnection", err)
	}
	if r := <-ch; !errors.Is(r.err, ErrSelfConnection) {
		t.Fatalf("acceptor: %v, want ErrSelfConnection", r.err)
	}
}

func TestAcceptUnknownTorrent(t *testing.T) {
	addr, ch := acceptOne(t, peerB, testOpts())
	_, _, err := Dial(context.Background(), addr, otherHash, peerA, testOpts())
	if err == nil {
		t.Fatal("Dial succeeded for a torrent the acceptor does not have")
	}
	if r := <-ch; !errors.Is(r.err, ErrUnknownTorrent) {
		t.Fatalf("acceptor: %v, want ErrUnknownTorrent", r.err)
	}
}

func TestAcceptBadHandshakes(t *testing.T) {
	cases := []struct {
		name string
		send []byte
	}{
		{"truncated", rawHandshake(protocolString, testHash, peerA)[:40]},
		{"wrong protocol", rawHandshake("BitTorrent protocoX", testHash, peerA)},
		{"zero length protocol", append([]byte{0}, make([]byte, 67)...)},
		{"truncated peer id", rawHandshake(protocolString, testHash, peerA)[:60]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, ch := acceptOne(t, peerB, testOpts())
			nc, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			nc.Write(c.send)
			nc.(*net.TCPConn).CloseWrite()
			r := <-ch
			nc.Close()
			if !errors.Is(r.err, ErrProtocol) {
				t.Fatalf("Accept: %v, want ErrProtocol", r.err)
			}
		})
	}
}

// TestAcceptAnswersBeforePeerID: BEP 3 lets the initiator wait for our handshake before it
// sends its peer id; Accept must answer as soon as it has the info hash.
func TestAcceptAnswersBeforePeerID(t *testing.T) {
	addr, ch := acceptOne(t, peerB, testOpts())
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	hs := rawHandshake(protocolString, testHash, peerA)
	if _, err := nc.Write(hs[:48]); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, HandshakeLen)
	if _, err := io.ReadFull(nc, reply); err != nil {
		t.Fatalf("no answer before our peer id: %v", err)
	}
	h, err := ParseHandshake(reply)
	if err != nil || h.InfoHash != testHash || h.PeerID != peerB || !h.SupportsExtensions() {
		t.Fatalf("answer %+v, %v", h, err)
	}
	if _, err := nc.Write(hs[48:]); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.c.Close()
	if r.h.PeerID != peerA {
		t.Fatalf("peer id %x", r.h.PeerID)
	}
}

func TestDialContext(t *testing.T) {
	// A peer that accepts and never answers.
	silent := listen(t, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, nc)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := Dial(ctx, silent, testHash, peerA, testOpts())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial took %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, _, err = Dial(ctx, silent, testHash, peerA, testOpts())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial took %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, _, err := Dial(ctx, silent, testHash, peerA, testOpts()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: %v", err)
	}
}

func TestReadTimeout(t *testing.T) {
	opts := testOpts()
	opts.ReadTimeout = 300 * time.Millisecond
	addr, ch := acceptOne(t, peerB, testOpts())
	a, _, err := Dial(context.Background(), addr, testHash, peerA, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	b := r.c
	defer b.Close()

	// Keep-alives every 100 ms keep the connection alive well past the timeout.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 8; i++ {
			time.Sleep(100 * time.Millisecond)
			if err := b.WriteMessage(KeepAlive()); err != nil {
				done <- err
				return
			}
			if err := b.Flush(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 8; i++ {
		m, err := a.ReadMessage()
		if err != nil || !m.KeepAlive {
			t.Fatalf("keep-alive %d: %v, %v", i, m, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Then silence: dropped after ReadTimeout, as an I/O timeout, not a protocol error.
	start := time.Now()
	_, err = a.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || errors.Is(err, ErrProtocol) {
		t.Fatalf("silent peer: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("timed out after %v, want about 300ms", d)
	}
}

func TestParseHandshake(t *testing.T) {
	b := rawHandshake(protocolString, testHash, peerB)
	b[25] = 0x10
	b[27] = 0x05
	h, err := ParseHandshake(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.SupportsExtensions() || !h.SupportsDHT() || !h.SupportsFast() || h.InfoHash != testHash || h.PeerID != peerB {
		t.Fatalf("%+v", h)
	}
	if got := AppendHandshake(nil, h); string(got) != string(b) {
		t.Fatal("AppendHandshake does not round-trip")
	}
	if h.Reserved != ReservedBits(true, true, true) {
		t.Fatalf("ReservedBits = %x, want %x", ReservedBits(true, true, true), h.Reserved)
	}
	for _, bad := range [][]byte{nil, b[:67], append(b, 0), rawHandshake("BitTorrent Protocol", testHash, peerB)} {
		if _, err := ParseHandshake(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHandshake(%q) = %v", bad, err)
		}
	}
}
