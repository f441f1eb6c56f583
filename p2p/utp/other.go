package utp

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// otherQueue bounds the datagrams NonUTP holds for its reader; more are dropped, as a full
// socket buffer would.
const otherQueue = 256

// NonUTP returns a PacketConn that reads the datagrams of the socket's PacketConn that are
// not uTP (the DHT on a shared listen port, for one) and writes through it. Datagrams that
// arrive before the first call, or while its queue is full, are dropped. Closing it stops the
// hand-off, not the socket. Every call returns the same PacketConn.
func (s *Socket) NonUTP() net.PacketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.other == nil {
		s.other = &nonUTPConn{s: s, q: make(chan datagram, otherQueue), done: make(chan struct{}), rdl: makeDeadline()}
	}
	return s.other
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

// nonUTPConn is the socket's PacketConn for everything that is not uTP.
type nonUTPConn struct {
	s         *Socket
	q         chan datagram
	done      chan struct{}
	closeOnce sync.Once
	rdl       deadline
}

func (o *nonUTPConn) deliver(b []byte, from netip.AddrPort) {
	select {
	case <-o.done:
		return
	default:
	}
	select {
	case o.q <- datagram{append([]byte(nil), b...), from}:
	default:
	}
}

// ReadFrom returns the next datagram that is not uTP.
func (o *nonUTPConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if isClosed(o.rdl.wait()) {
		return 0, nil, errDeadline
	}
	select {
	case d := <-o.q:
		return copy(p, d.b), net.UDPAddrFromAddrPort(d.from), nil
	case <-o.done:
		return 0, nil, net.ErrClosed
	case <-o.rdl.wait():
		return 0, nil, errDeadline
	}
}

// WriteTo sends through the socket's PacketConn.
func (o *nonUTPConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-o.done:
		return 0, net.ErrClosed
	default:
	}
	return o.s.pc.WriteTo(p, addr)
}

// Close stops the hand-off; the socket keeps running.
func (o *nonUTPConn) Close() error {
	o.closeOnce.Do(func() { close(o.done) })
	return nil
}

func (o *nonUTPConn) LocalAddr() net.Addr { return o.s.pc.LocalAddr() }

func (o *nonUTPConn) SetDeadline(t time.Time) error { return o.SetReadDeadline(t) }

func (o *nonUTPConn) SetReadDeadline(t time.Time) error { o.rdl.set(t); return nil }

// SetWriteDeadline is a no-op: writes go straight to the shared PacketConn and do not block
// for long.
func (o *nonUTPConn) SetWriteDeadline(time.Time) error { return nil }
