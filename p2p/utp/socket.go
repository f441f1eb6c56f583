// Package utp is the uTP transport (BEP 29): reliable, ordered byte streams over UDP with
// LEDBAT congestion control, which yields to other traffic and can cross NATs.
//
// A Socket runs over one net.PacketConn, which it may share: datagrams that are not uTP
// (the DHT's bencoded messages, UDP tracker replies) are handed on through NonUTP. Dial and
// Accept give connections that implement net.Conn, so everything above the transport (the
// BitTorrent handshake and messages of package p2p) is the same as over TCP.
//
// Everything a peer can make us hold is bounded: per connection the send buffer, the receive
// and reorder buffer and the packets in flight; per socket the connections, the half-open
// ones and the accept queue.
package utp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// connKey identifies a connection: the peer's address and the id of the packets we receive.
type connKey struct {
	addr netip.AddrPort
	id   uint16
}

// SocketStats are counters of a socket.
type SocketStats struct {
	Conns       int    // connections in every state
	HalfOpen    int    // incoming connections that sent only a SYN so far
	SYNDropped  uint64 // SYNs refused: too many connections or half-open ones
	ResetsSent  uint64 // ST_RESET answers to packets of unknown connections
	Malformed   uint64 // uTP-looking datagrams that failed to parse
	NonUTP      uint64 // datagrams handed on (or dropped when nobody reads them)
	UnknownConn uint64 // packets for no connection of ours
}

// Socket multiplexes uTP connections over one PacketConn. It implements net.Listener.
type Socket struct {
	pc    net.PacketConn
	udp   *net.UDPConn // pc, when it is one: reads and writes that allocate nothing
	cfg   Config
	log   *slog.Logger
	epoch time.Time

	mu       sync.Mutex
	conns    map[connKey]*Conn
	halfOpen int
	closed   bool
	other    *nonUTPConn

	acceptQ  chan *Conn
	done     chan struct{}
	readDone chan struct{}

	packets  sync.Pool // *outPacket
	payloads sync.Pool // *[]byte of poolPayload capacity

	// off is what the kernel offers (both offloads need pc to be a *net.UDPConn on Linux).
	// gso: equal-size datagrams to one peer leave in one system call (UDP_SEGMENT); cleared
	// for good when the path turns out not to support it. gro: reads may return a run of
	// datagrams (UDP_GRO).
	off               offload
	gso               atomic.Bool
	gro               bool
	gsoSends, groRuns atomic.Uint64 // offloaded sends and coalesced reads, for tests

	resetMu     sync.Mutex
	resetWindow time.Time
	resetCount  int

	synDropped, resetsSent, malformed, nonUTP, unknown atomic.Uint64
}

// maxResetsPerSecond bounds the ST_RESET answers we send, so that spoofed packets cannot
// make us a traffic source.
const maxResetsPerSecond = 200

// socketBuffer is the kernel buffer size asked for a UDP socket.
const socketBuffer = 4 << 20

// Listen opens a UDP socket on address ("udp", "udp4" or "udp6" network) and runs uTP on it.
func Listen(network, address string, cfg Config) (*Socket, error) {
	pc, err := net.ListenPacket(network, address)
	if err != nil {
		return nil, fmt.Errorf("utp: listen: %w", err)
	}
	return NewSocket(pc, cfg), nil
}

// NewSocket runs uTP over pc, which the socket owns from now on (Close closes it).
func NewSocket(pc net.PacketConn, cfg Config) *Socket {
	cfg.setDefaults()
	s := &Socket{
		pc: pc, cfg: cfg, log: cfg.Logger, epoch: time.Now(),
		conns:    make(map[connKey]*Conn),
		acceptQ:  make(chan *Conn, cfg.Backlog),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
	}
	if s.udp, _ = pc.(*net.UDPConn); s.udp != nil {
		// Best effort: bursts of a full window must not overflow the kernel's default
		// buffer (about 200 KiB) on a fast path; the kernel caps it at rmem_max.
		_ = s.udp.SetReadBuffer(socketBuffer)
		_ = s.udp.SetWriteBuffer(socketBuffer)
		if !cfg.noOffload {
			s.off = enableOffload(s.udp)
			s.gso.Store(s.off.gso)
			s.gro = s.off.gro
		}
	}
	mss := cfg.MaxPayload
	s.packets.New = func() any { return &outPacket{buf: make([]byte, 0, headerLen+mss)} }
	s.payloads.New = func() any { b := make([]byte, 0, poolPayload); return &b }
	go s.readLoop()
	return s
}

// Addr is the local address of the socket.
func (s *Socket) Addr() net.Addr { return s.pc.LocalAddr() }

// Stats returns the socket's counters.
func (s *Socket) Stats() SocketStats {
	s.mu.Lock()
	st := SocketStats{Conns: len(s.conns), HalfOpen: s.halfOpen}
	s.mu.Unlock()
	st.SYNDropped, st.ResetsSent = s.synDropped.Load(), s.resetsSent.Load()
	st.Malformed, st.NonUTP, st.UnknownConn = s.malformed.Load(), s.nonUTP.Load(), s.unknown.Load()
	return st
}

// micros is the clock of timestamp_microseconds: microseconds since the socket started,
// modulo 2^32.
func (s *Socket) micros(now time.Time) uint32 { return uint32(now.Sub(s.epoch) / time.Microsecond) }

// Dial opens a connection to addr. It fails when ctx ends first, when the peer answers with
// ST_RESET (ErrRefused), or after SYNRetransmits unanswered SYNs (ErrTimedOut).
func (s *Socket) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("utp: dial %v: %w", addr, net.ErrClosed)
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		return nil, fmt.Errorf("utp: dial %v: %w", addr, ErrTooManyConns)
	}
	var id uint16
	for {
		id = uint16(rand.Uint32())
		_, a := s.conns[connKey{addr, id}]
		_, b := s.conns[connKey{addr, id + 1}]
		if !a && !b {
			break
		}
	}
	c := newConn(s, addr, id, id+1, stateSynSent, now)
	s.conns[connKey{addr, id}] = c
	s.mu.Unlock()

	c.mu.Lock()
	c.seq = s.cfg.firstSeq()
	c.transmitLocked(c.newPacketLocked(stSyn, 0), now)
	c.sendQueuedLocked()
	c.armTimerLocked(now)
	c.mu.Unlock()

	select {
	case <-c.established:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateConnected {
		return c, nil
	}
	err := c.err
	if err == nil {
		err = ctx.Err()
		c.failLocked(err, false)
	}
	return nil, fmt.Errorf("utp: dial %v: %w", addr, err)
}

// Accept waits for the next incoming connection (one whose initiator has followed its SYN
// up, so it is known to be reachable).
func (s *Socket) Accept() (net.Conn, error) {
	select {
	case c := <-s.acceptQ:
		return c, nil
	case <-s.done:
		return nil, fmt.Errorf("utp: accept: %w", net.ErrClosed)
	}
}

// Close resets every connection, stops the socket and closes its PacketConn.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.closed = true
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	other := s.other
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		c.failLocked(net.ErrClosed, true)
		c.mu.Unlock()
	}
	close(s.done)
	if other != nil {
		other.Close()
	}
	err := s.pc.Close()
	<-s.readDone
	return err
}

// readLoop reads every datagram and dispatches it. A coalesced read (GRO) is a batch of
// datagrams; the connections it touched answer once, after the whole batch (batch.go).
// Where the socket can be polled, they answer once no datagram is left to read (or after
// maxBatchReads reads): the ACKs and data they send then go out as the loop is about to
// wait anyway, and cover more.
func (s *Socket) readLoop() {
	defer close(s.readDone)
	buf := make([]byte, 64<<10)
	oob := make([]byte, oobSize)
	var rb readBatch
	reads := 0
	for {
		wait := len(rb.touched) == 0 || !s.off.canPoll()
		n, seg, from, err := s.read(buf, oob, wait)
		if errors.Is(err, errWouldBlock) {
			rb.finish(time.Now())
			reads = 0
			continue
		}
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("utp: read", "err", err)
			time.Sleep(time.Millisecond) // do not spin on a persistent error
			continue
		}
		now := time.Now()
		b := buf[:n]
		if seg <= 0 {
			seg = n
		}
		for len(b) > 0 {
			k := min(seg, len(b))
			s.handleDatagram(b[:k], from, now, &rb)
			b = b[k:]
		}
		rb.release() // no connection stays locked while the loop reads
		if reads++; !s.off.canPoll() || reads >= maxBatchReads {
			rb.finish(now)
			reads = 0
		}
	}
}

// maxBatchReads bounds the reads (each up to 64 KiB) whose connections answer together.
const maxBatchReads = 4

// errWouldBlock is read's answer, when it may not wait, to a socket with nothing queued.
var errWouldBlock = errors.New("utp: no datagram queued")

// read reads one datagram, or with GRO a run of datagrams of seg bytes each (the last may
// be shorter); seg is 0 for a single one. Without wait it may return errWouldBlock (where
// the socket can be polled).
func (s *Socket) read(buf, oob []byte, wait bool) (n, seg int, from netip.AddrPort, err error) {
	if !s.gro {
		n, from, err = s.readFrom(buf)
		return n, 0, from, err
	}
	for {
		n, oobn, flags, ap, err := s.off.recvMsg(buf, oob, wait)
		if err != nil {
			return 0, 0, ap, err
		}
		if truncated(flags) {
			s.malformed.Add(1) // larger than any datagram a peer may send us
			continue
		}
		seg := groSegmentSize(oob[:oobn])
		if seg > 0 && seg < n {
			s.groRuns.Add(1)
		}
		return n, seg, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
}

func (s *Socket) readFrom(b []byte) (int, netip.AddrPort, error) {
	if s.udp != nil {
		n, ap, err := s.udp.ReadFromUDPAddrPort(b)
		return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err
	}
	n, a, err := s.pc.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (s *Socket) writeTo(b []byte, to netip.AddrPort) error {
	if s.off.canSendRaw(to) {
		return s.off.send([][]byte{b}, to)
	}
	if s.udp != nil {
		_, err := s.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// handleDatagram dispatches one datagram of the read batch rb: to NonUTP, to its
// connection, or it opens one.
func (s *Socket) handleDatagram(b []byte, from netip.AddrPort, now time.Time, rb *readBatch) {
	if !isUTP(b) {
		s.nonUTP.Add(1)
		s.mu.Lock()
		other := s.other
		s.mu.Unlock()
		if other != nil {
			other.deliver(b, from)
		}
		return
	}
	h, payload, err := parsePacket(b)
	if err != nil {
		s.malformed.Add(1)
		return
	}
	switch h.typ {
	case stSyn:
		rb.release() // these take connection locks of their own
		s.handleSyn(h, from, now)
		return
	case stReset:
		rb.release()
		s.handleReset(h, from)
		return
	}
	c := rb.cached(from, h.connID)
	if c == nil {
		s.mu.Lock()
		c = s.conns[connKey{from, h.connID}]
		s.mu.Unlock()
	}
	if c == nil {
		s.unknown.Add(1)
		s.sendReset(h, from, now)
		return
	}
	rb.lock(c)
	c.handlePacketLocked(h, payload, now)
}

// handleSyn answers a SYN: a repeated one goes to its connection, a new one opens a
// half-open connection if the bounds allow.
func (s *Socket) handleSyn(h header, from netip.AddrPort, now time.Time) {
	key := connKey{from, h.connID + 1}
	s.mu.Lock()
	if c := s.conns[key]; c != nil {
		s.mu.Unlock()
		c.handlePacket(h, nil, now)
		return
	}
	if s.closed || len(s.conns) >= s.cfg.MaxConns || s.halfOpen >= s.cfg.MaxHalfOpen {
		s.mu.Unlock()
		s.synDropped.Add(1)
		return
	}
	c := newConn(s, from, h.connID+1, h.connID, stateSynRecv, now)
	c.isAcceptor, c.synSeq = true, h.seq
	s.conns[key] = c
	s.halfOpen++
	s.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.ack = h.seq
	c.seq = s.cfg.firstSeq()
	c.peerWnd = int(h.wnd)
	c.replyMicro = s.micros(now) - h.ts
	c.deadAt = now.Add(s.cfg.HalfOpenTimeout)
	c.sendStateLocked(now)
	c.armTimerLocked(now)
}

// handleReset ends the connection a RESET names. Like libutp, it accepts either of the
// connection's ids, since implementations differ in which one they put there.
func (s *Socket) handleReset(h header, from netip.AddrPort) {
	s.mu.Lock()
	c := s.conns[connKey{from, h.connID}]
	if c == nil {
		for _, id := range []uint16{h.connID + 1, h.connID - 1} {
			if o := s.conns[connKey{from, id}]; o != nil && o.sendID == h.connID {
				c = o
				break
			}
		}
	}
	s.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := ErrReset
	if c.state == stateSynSent {
		err = ErrRefused
	}
	c.failLocked(err, false)
}

// sendReset answers a packet for no connection of ours with ST_RESET, within a rate limit.
func (s *Socket) sendReset(h header, to netip.AddrPort, now time.Time) {
	s.resetMu.Lock()
	if now.Sub(s.resetWindow) >= time.Second {
		s.resetWindow, s.resetCount = now, 0
	}
	s.resetCount++
	ok := s.resetCount <= maxResetsPerSecond
	s.resetMu.Unlock()
	if !ok {
		return
	}
	s.resetsSent.Add(1)
	r := header{typ: stReset, connID: h.connID, ts: s.micros(now), seq: uint16(rand.Uint32()), ack: h.seq}
	var buf [headerLen]byte
	if err := s.writeTo(appendHeader(buf[:0], r), to); err != nil {
		s.log.Debug("utp: send reset", "peer", to, "err", err)
	}
}

// established queues a connection that came out of half-open for Accept; false when the
// queue is full (the caller resets it). Called with c.mu held.
func (s *Socket) established(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.halfOpen--
	if s.closed {
		return false
	}
	select {
	case s.acceptQ <- c:
		return true
	default:
		return false
	}
}

// remove takes a finished connection out of the table. Called with c.mu held.
func (s *Socket) remove(c *Conn, halfOpen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := connKey{c.remote, c.recvID}
	if s.conns[key] == c {
		delete(s.conns, key)
	}
	if halfOpen {
		s.halfOpen--
	}
}

func (s *Socket) getPacket() *outPacket {
	p := s.packets.Get().(*outPacket)
	p.reset()
	return p
}

func (s *Socket) putPacket(p *outPacket) {
	if cap(p.buf) == headerLen+s.cfg.MaxPayload {
		s.packets.Put(p)
	}
}

// getPayload returns an empty buffer for a reordered payload of n bytes.
func (s *Socket) getPayload(n int) []byte {
	if n > poolPayload {
		return make([]byte, 0, n)
	}
	return (*s.payloads.Get().(*[]byte))[:0]
}

func (s *Socket) putPayload(b []byte) {
	if cap(b) == poolPayload {
		b = b[:0]
		s.payloads.Put(&b)
	}
}
