package utp

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

type connState uint8

const (
	stateSynSent   connState = iota // we sent a SYN, no answer yet
	stateSynRecv                    // we answered a SYN, nothing else came yet (half-open)
	stateConnected                  // both sides have heard each other
	stateDone                       // finished or failed; no longer in the socket's table
)

const (
	// dupAckThreshold: this many duplicate ACKs, or packets acknowledged selectively after
	// one, and it counts as lost (fast retransmit).
	dupAckThreshold = 3
	// reorderSlots is how far past the next expected packet we keep packets (a power of two).
	reorderSlots = 1024
	// delayedAck is how long in-order data may wait for its ACK.
	delayedAck = 2 * time.Millisecond
	// ackEveryBytes and ackEveryPackets: in-order data at least this large (or this many
	// packets) is acknowledged at the end of the read batch that brought it; less waits up to
	// delayedAck for more. On a fast path this spares the sender a wakeup per batch it sends;
	// below 32 MB/s a connection is acknowledged every delayedAck, as before.
	ackEveryBytes   = 64 << 10
	ackEveryPackets = 64
	// quickAckBytes and quickAckIdle: the first bytes of a connection, and data after a
	// pause, are acknowledged every second packet, as before ackEveryBytes: the sender is in
	// slow start then (a window of 2 packets at first, or 1 after a timeout), and would wait
	// delayedAck for every round of it.
	quickAckBytes = 256 << 10
	quickAckIdle  = 500 * time.Millisecond
	// spareLinger is how long a connection with nothing to send keeps its spare packets
	// (getPacketLocked) before it returns them to the socket's pool.
	spareLinger = time.Second
	// poolPayload is the payload capacity of pooled reorder buffers.
	poolPayload = 1500
)

// outPacket is a packet we sent (or will resend) that the peer has not acknowledged
// cumulatively. buf holds the whole datagram; its header is rewritten before each send.
type outPacket struct {
	buf      []byte
	seq      uint16
	payload  int
	sentAt   time.Time
	tx       uint64 // transmission order of the last send (for loss detection)
	count    int    // transmissions so far
	sacked   bool   // acknowledged selectively; kept until acknowledged cumulatively
	lost     bool   // declared lost, waiting to be resent; not in flight
	inFlight bool
}

// reset clears the packet's state for reuse (not its buffer).
func (p *outPacket) reset() {
	p.seq, p.payload, p.tx, p.count = 0, 0, 0, 0
	p.sacked, p.lost, p.inFlight = false, false, false
}

// reorderSlot holds a packet that arrived ahead of a gap.
type reorderSlot struct {
	data []byte
	ok   bool
}

// ConnStats are counters of one connection.
type ConnStats struct {
	RTT             time.Duration // smoothed round-trip time
	Cwnd            int           // congestion window, bytes
	PacketsSent     uint64        // data and FIN packets, retransmissions included
	Retransmits     uint64
	Timeouts        uint64 // retransmission timeouts
	PacketsReceived uint64
	Duplicates      uint64 // data packets received twice
}

// Conn is one uTP connection. It implements net.Conn; Read and Write may be called from
// different goroutines at once, and Close from any.
type Conn struct {
	s      *Socket
	remote netip.AddrPort
	raddr  *net.UDPAddr
	recvID uint16 // the connection id of packets we receive
	sendID uint16 // the connection id of packets we send

	established chan struct{} // closed once connected, or failed
	readable    chan struct{} // a token when data, EOF or an error arrived
	writable    chan struct{} // a token when send buffer space was freed
	dead        chan struct{} // closed by Close or on failure
	rdl, wdl    deadline

	mu         sync.Mutex
	state      connState
	err        error // why the connection ended
	userClosed bool
	deadClosed bool
	estClosed  bool
	isAcceptor bool
	synSeq     uint16 // the initiator's SYN sequence number (acceptor side)
	timer      *time.Timer
	timerAt    time.Time
	lastRecv   time.Time
	lastSend   time.Time
	deadAt     time.Time // half-open or linger limit
	stats      ConnStats

	// send side
	seq          uint16       // next sequence number to send
	txq          [][]byte     // datagrams transmitted but not yet handed to the socket (batch.go)
	unsent       []*outPacket // written, not sent yet (from unsentHead on): payload only
	unsentHead   int
	spare        []*outPacket // acknowledged packets for the next Write (see getPacketLocked)
	unsentBytes  int
	out          []*outPacket // unacknowledged packets, out[i].seq == out[0].seq+i
	outBytes     int          // payload bytes in out
	inFlight     int          // payload bytes sent and not acknowledged, sacked or lost
	lostCount    int
	txCounter    uint64
	finQueued    bool
	finSent      bool
	peerWnd      int
	lastAckNr    uint16
	dupAcks      int
	recoverSeq   uint16 // losses of packets before this one belong to the last window cut
	cutOnce      bool
	cc           ledbat
	rtt          rttEstimator
	rto          time.Duration
	rtoAt        time.Time
	timeouts     int
	zeroWndSince time.Time
	probeAt      time.Time

	// receive side
	ack          uint16 // last sequence number received in order
	recvQ        byteRing
	reorder      []reorderSlot
	reorderBytes int
	reorderCount int
	finSeq       uint16
	gotFin       bool
	eof          bool
	replyMicro   uint32 // one-way delay of the peer's last packet, echoed in timestamp_difference
	ackPending   int    // in-order packets not acknowledged yet
	ackBytes     int    // their payload bytes
	ackNow       bool   // an ACK is due at the end of the read batch
	ackAt        time.Time
	lastWnd      int       // the window we last advertised
	inOrderBytes int64     // in-order payload received since the start, or the last pause
	lastInOrder  time.Time // when in-order data last arrived

	ctlBuf [headerLen + 2 + maxSACKBytes]byte // the ACK or RESET being sent (a field: no allocation per send)
}

func newConn(s *Socket, remote netip.AddrPort, recvID, sendID uint16, state connState, now time.Time) *Conn {
	c := &Conn{
		s: s, remote: remote, raddr: net.UDPAddrFromAddrPort(remote),
		recvID: recvID, sendID: sendID, state: state,
		established: make(chan struct{}),
		readable:    make(chan struct{}, 1),
		writable:    make(chan struct{}, 1),
		dead:        make(chan struct{}),
		rdl:         makeDeadline(),
		wdl:         makeDeadline(),
		lastRecv:    now,
		lastSend:    now,
		peerWnd:     s.cfg.RecvBuffer,
		cc:          newLedbat(s.cfg.MaxPayload, s.cfg.SendBuffer, s.cfg.TargetDelay),
		rtt:         rttEstimator{minRTO: s.cfg.MinRTO},
	}
	c.rto = c.rtt.rto()
	return c
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// ---- net.Conn ----

// Read reads received bytes; io.EOF once the peer's FIN and everything before it are read.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if isClosed(c.rdl.wait()) {
			return 0, errDeadline
		}
		c.mu.Lock()
		switch {
		case c.userClosed:
			c.mu.Unlock()
			return 0, net.ErrClosed
		case c.recvQ.Len() > 0:
			if len(p) == 0 {
				c.mu.Unlock()
				return 0, nil
			}
			n := c.recvQ.read(p)
			c.windowUpdateLocked(time.Now())
			c.mu.Unlock()
			return n, nil
		case c.eof:
			c.mu.Unlock()
			return 0, io.EOF
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return 0, err
		}
		c.mu.Unlock()
		select {
		case <-c.readable:
		case <-c.dead:
		case <-c.rdl.wait():
		}
	}
}

// Write queues p and sends what the windows allow; it blocks while the send buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	n := 0
	for {
		if isClosed(c.wdl.wait()) {
			return n, errDeadline
		}
		c.mu.Lock()
		switch {
		case c.userClosed, c.finQueued:
			c.mu.Unlock()
			return n, net.ErrClosed
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return n, err
		}
		if free := c.s.cfg.SendBuffer - c.unsentBytes - c.outBytes; free > 0 && n < len(p) {
			n += c.queueLocked(p[n:min(len(p), n+free)])
			now := time.Now()
			c.flushLocked(now)
			c.armTimerLocked(now)
		}
		c.mu.Unlock()
		if n == len(p) {
			return n, nil
		}
		select {
		case <-c.writable:
		case <-c.dead:
		case <-c.wdl.wait():
		}
	}
}

// Close stops Read and Write at once. What was written keeps being sent in the background,
// then a FIN, within LingerTimeout; the connection leaves the socket once the FIN is
// acknowledged.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.userClosed {
		return net.ErrClosed
	}
	c.userClosed = true
	c.closeDeadLocked()
	now := time.Now()
	if c.state != stateConnected {
		c.failLocked(net.ErrClosed, true)
		return nil
	}
	c.finQueued = true
	c.deadAt = now.Add(c.s.cfg.LingerTimeout)
	c.flushLocked(now)
	c.maybeFinishLocked()
	c.armTimerLocked(now)
	return nil
}

// CloseWrite sends a FIN after what was written (a half-close): the peer reads EOF, and
// Read keeps working until the peer's own FIN. Write fails afterwards.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.userClosed {
		return net.ErrClosed
	}
	if c.err != nil {
		return c.err
	}
	if c.finQueued || c.state != stateConnected {
		return nil
	}
	now := time.Now()
	c.finQueued = true
	c.flushLocked(now)
	c.maybeFinishLocked()
	c.armTimerLocked(now)
	return nil
}

// LocalAddr is the socket's address.
func (c *Conn) LocalAddr() net.Addr { return c.s.pc.LocalAddr() }

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline makes Read fail with os.ErrDeadlineExceeded from t on.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rdl.set(t); return nil }

// SetWriteDeadline makes Write fail with os.ErrDeadlineExceeded from t on.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// WriteSize is the size of the writes that suit the connection best: full packets that
// fill one offloaded send (45 packets of 1400 bytes, 63,000 bytes, by default). A writer
// that buffers (p2p's) sizes its buffer to it, so that its flushes leave no partial
// packet behind and take one system call each.
func (c *Conn) WriteSize() int {
	mss := c.s.cfg.MaxPayload
	return max(1, min(maxGSOSegments, maxGSOBytes/(headerLen+mss))) * mss
}

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.RTT, st.Cwnd = c.rtt.srtt, c.cc.cwnd
	return st
}

// ---- packets out ----

// headerLocked is the header of a packet of type typ with sequence number seq, stamped now.
func (c *Conn) headerLocked(typ packetType, seq uint16, now time.Time) header {
	wnd := c.recvWindowLocked()
	c.lastWnd = wnd
	id := c.sendID
	if typ == stSyn {
		id = c.recvID
	}
	return header{typ: typ, connID: id, ts: c.s.micros(now), tsDiff: c.replyMicro, wnd: uint32(wnd), seq: seq, ack: c.ack}
}

func (c *Conn) recvWindowLocked() int {
	return max(0, c.s.cfg.RecvBuffer-c.recvQ.Len()-c.reorderBytes)
}

// sendStateLocked sends an ACK (ST_STATE), with a selective ACK when packets wait past a gap.
func (c *Conn) sendStateLocked(now time.Time) {
	h := c.headerLocked(stState, c.seq, now)
	var sack [maxSACKBytes]byte
	if c.reorderCount > 0 {
		n := 0
		for i := 0; i < 8*maxSACKBytes; i++ {
			seq := c.ack + 2 + uint16(i)
			if c.reorder[seq&(reorderSlots-1)].ok {
				sack[i/8] |= 1 << (i % 8)
				n = i/8 + 1
			}
		}
		h.sack = sack[:n]
	}
	c.sendRawLocked(appendHeader(c.ctlBuf[:0], h), now)
	c.ackedLocked()
}

// ackedLocked records that the peer has been told of everything received: no ACK pending.
func (c *Conn) ackedLocked() {
	c.ackPending, c.ackBytes, c.ackNow = 0, 0, false
}

// sendRawLocked sends one datagram to the peer.
func (c *Conn) sendRawLocked(b []byte, now time.Time) {
	c.lastSend = now
	if err := c.s.writeTo(b, c.remote); err != nil {
		c.s.log.Debug("utp: send", "peer", c.remote, "err", err)
	}
}

// queueLocked copies p into packets waiting to be sent, filling the last one first, so that
// a byte is copied once on its way from Write to the socket.
func (c *Conn) queueLocked(p []byte) int {
	mss := c.s.cfg.MaxPayload
	n := 0
	for n < len(p) {
		var q *outPacket
		if k := len(c.unsent); k > c.unsentHead && len(c.unsent[k-1].buf) < headerLen+mss {
			q = c.unsent[k-1]
		} else {
			q = c.getPacketLocked()
			q.buf = q.buf[:headerLen]
			if len(c.unsent) == cap(c.unsent) && c.unsentHead > 0 {
				k := copy(c.unsent, c.unsent[c.unsentHead:])
				clear(c.unsent[k:])
				c.unsent, c.unsentHead = c.unsent[:k], 0
			}
			c.unsent = append(c.unsent, q)
		}
		k := min(len(p)-n, headerLen+mss-len(q.buf))
		q.buf = append(q.buf, p[n:n+k]...)
		n += k
	}
	c.unsentBytes += n
	return n
}

// takeUnsentLocked removes up to n bytes from the front of the unsent queue as one packet
// (splitting the first when a small window asks for less than it holds).
func (c *Conn) takeUnsentLocked(n int) *outPacket {
	q := c.unsent[c.unsentHead]
	if len(q.buf)-headerLen <= n {
		c.unsent[c.unsentHead] = nil
		c.unsentHead++
		if c.unsentHead == len(c.unsent) {
			c.unsent, c.unsentHead = c.unsent[:0], 0
		}
		c.unsentBytes -= len(q.buf) - headerLen
		return q
	}
	p := c.getPacketLocked()
	p.buf = append(p.buf[:headerLen], q.buf[headerLen:headerLen+n]...)
	q.buf = q.buf[:headerLen+copy(q.buf[headerLen:], q.buf[headerLen+n:])]
	c.unsentBytes -= n
	return p
}

// getPacketLocked returns an empty packet: one the connection used before if it has one.
// Packets go back to the socket's pool only once nothing was in flight or waiting for
// spareLinger (or the connection ends), so a sender does not pass every packet through the
// pool (whose cross-goroutine hand-off the profile showed at 0.15 CPU-s/GiB), not even a
// seeder that empties its queue between two requests, and an idle connection holds none.
// Spares never outnumber the packets the connection held at its peak.
func (c *Conn) getPacketLocked() *outPacket {
	if k := len(c.spare); k > 0 {
		p := c.spare[k-1]
		c.spare[k-1] = nil
		c.spare = c.spare[:k-1]
		p.reset()
		return p
	}
	return c.s.getPacket()
}

// dropSparesLocked returns the spare packets to the socket's pool.
func (c *Conn) dropSparesLocked() {
	for i, p := range c.spare {
		c.s.putPacket(p)
		c.spare[i] = nil
	}
	c.spare = c.spare[:0]
}

// unsentHeadLocked is the payload size of the next unsent packet (0 when none).
func (c *Conn) unsentHeadLocked() int {
	if c.unsentHead == len(c.unsent) {
		return 0
	}
	return len(c.unsent[c.unsentHead].buf) - headerLen
}

// newPacketLocked makes an outstanding packet of type typ with the next sequence number:
// a SYN or FIN without payload, or data of up to n bytes from the unsent queue.
func (c *Conn) newPacketLocked(typ packetType, n int) *outPacket {
	var p *outPacket
	if typ == stData {
		p = c.takeUnsentLocked(n)
	} else {
		p = c.getPacketLocked()
		p.buf = p.buf[:headerLen]
	}
	n = len(p.buf) - headerLen
	p.buf[0] = byte(typ)<<4 | protocolVersion
	p.buf[1] = 0
	connID := c.sendID
	if typ == stSyn {
		connID = c.recvID
	}
	binary.BigEndian.PutUint16(p.buf[2:], connID)
	binary.BigEndian.PutUint16(p.buf[16:], c.seq)
	p.seq, p.payload = c.seq, n
	c.seq++
	c.out = append(c.out, p)
	c.outBytes += n
	return p
}

// transmitLocked (re)sends p with a fresh timestamp, ACK and window: it queues it for
// sendQueuedLocked, which flushLocked calls.
func (c *Conn) transmitLocked(p *outPacket, now time.Time) {
	b := p.buf
	binary.BigEndian.PutUint32(b[4:], c.s.micros(now))
	binary.BigEndian.PutUint32(b[8:], c.replyMicro)
	c.lastWnd = c.recvWindowLocked()
	binary.BigEndian.PutUint32(b[12:], uint32(c.lastWnd))
	binary.BigEndian.PutUint16(b[18:], c.ack)
	p.count++
	p.sentAt = now
	c.txCounter++
	p.tx = c.txCounter
	if p.lost {
		p.lost = false
		c.lostCount--
	}
	if !p.inFlight {
		p.inFlight = true
		c.inFlight += p.payload
	}
	if c.rtoAt.IsZero() {
		c.rtoAt = now.Add(c.rto)
	}
	c.stats.PacketsSent++
	if p.count > 1 {
		c.stats.Retransmits++
	}
	if c.reorderCount == 0 {
		c.ackedLocked() // the packet carries the ACK
	}
	c.lastSend = now
	c.txq = append(c.txq, b)
}

// canSendLocked reports whether n more payload bytes fit the congestion window and the
// peer's receive window. With nothing in flight one packet always may go, unless the peer's
// window is closed.
func (c *Conn) canSendLocked(n int) bool {
	if c.inFlight == 0 {
		return c.peerWnd >= n
	}
	return c.inFlight+n <= min(c.cc.cwnd, c.peerWnd)
}

// flushLocked sends what the windows allow (lost packets first, then new data, then the
// FIN) together with whatever else was queued.
func (c *Conn) flushLocked(now time.Time) {
	if c.state == stateConnected {
		c.fillLocked(now)
	}
	c.sendQueuedLocked()
}

// fillLocked queues what the windows allow: lost packets first, then new data, then the FIN.
func (c *Conn) fillLocked(now time.Time) {
	blocked := false
	if c.lostCount > 0 {
		for _, p := range c.out {
			if !p.lost {
				continue
			}
			if !c.canSendLocked(p.payload) {
				blocked = true
				break
			}
			c.transmitLocked(p, now)
		}
	}
	for !blocked && c.unsentBytes > 0 {
		n := c.unsentHeadLocked()
		if c.inFlight == 0 && c.peerWnd > 0 && c.peerWnd < n {
			n = c.peerWnd // a small window: fill it exactly
		}
		if !c.canSendLocked(n) {
			blocked = true
			break
		}
		c.transmitLocked(c.newPacketLocked(stData, n), now)
	}
	if !blocked && c.finQueued && !c.finSent && c.unsentBytes == 0 {
		c.finSent = true
		c.transmitLocked(c.newPacketLocked(stFin, 0), now)
	}
	c.cc.cwndFull = blocked && c.inFlight+c.s.cfg.MaxPayload > c.cc.cwnd
	// A receive window too small for a packet, with data waiting: probe it, and give up
	// after a while without progress.
	if blocked && c.peerWnd < c.s.cfg.MaxPayload {
		if c.zeroWndSince.IsZero() {
			c.zeroWndSince = now
			c.probeAt = now.Add(c.rto)
		}
	} else {
		c.zeroWndSince, c.probeAt = time.Time{}, time.Time{}
	}
}

// probeLocked sends one byte past a closed window (or resends the oldest lost packet), so
// that the peer answers with its current window.
func (c *Conn) probeLocked(now time.Time) {
	c.probeAt = now.Add(c.rto)
	for _, p := range c.out {
		if p.lost {
			c.transmitLocked(p, now)
			return
		}
	}
	if c.unsentBytes > 0 {
		c.transmitLocked(c.newPacketLocked(stData, 1), now)
	}
}

// windowUpdateLocked tells the peer that our window reopened after a read, when it had
// shrunk below a packet or half the buffer.
func (c *Conn) windowUpdateLocked(now time.Time) {
	w := c.recvWindowLocked()
	if c.state == stateConnected && c.lastWnd < max(c.s.cfg.MaxPayload, c.s.cfg.RecvBuffer/2) && w >= c.s.cfg.RecvBuffer/2 {
		c.sendStateLocked(now)
	}
}

// ---- packets in ----

// handlePacket processes one packet for this connection and answers it.
func (c *Conn) handlePacket(h header, payload []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlePacketLocked(h, payload, now)
	c.endBatchLocked(now)
}

// handlePacketLocked processes one packet for this connection (called by the socket's read
// loop, which calls endBatchLocked once the packets of the same read are processed: ACKs and
// new data go out there).
func (c *Conn) handlePacketLocked(h header, payload []byte, now time.Time) {
	if c.state == stateDone {
		return
	}
	c.lastRecv = now
	c.replyMicro = c.s.micros(now) - h.ts
	switch c.state {
	case stateSynSent:
		if h.typ != stState || len(c.out) == 0 || h.ack != c.out[0].seq {
			return
		}
		c.ack = h.seq - 1 // a SYN-ACK carries the sequence number of the peer's first packet
		c.state = stateConnected
		c.closeEstablishedLocked()
	case stateSynRecv:
		if h.typ == stSyn {
			if h.seq == c.synSeq {
				c.sendStateLocked(now) // our answer was lost
			}
			return
		}
		c.state = stateConnected
		c.deadAt = time.Time{}
		if !c.s.established(c) {
			c.failLocked(ErrBacklog, true)
			return
		}
		c.closeEstablishedLocked()
	case stateConnected:
		if h.typ == stSyn {
			if c.isAcceptor && h.seq == c.synSeq {
				c.sendStateLocked(now)
			}
			return
		}
	}
	prevWnd := c.peerWnd
	c.peerWnd = int(h.wnd)
	c.cc.onPeerDelaySample(c.replyMicro, now)
	c.processAckLocked(h, prevWnd, now)
	if c.state == stateDone {
		return
	}
	c.stats.PacketsReceived++
	switch h.typ {
	case stData:
		c.receiveDataLocked(h.seq, payload, now)
	case stFin:
		c.receiveFinLocked(h.seq)
	}
}

// processAckLocked takes the cumulative and selective acknowledgements of h, measures the
// RTT, detects losses and drives the congestion window. prevWnd is the peer's window before
// h: an ACK that opens it is a window update (the peer read data), not a duplicate ACK.
func (c *Conn) processAckLocked(h header, prevWnd int, now time.Time) {
	if h.wnd == 0 {
		c.timeouts = 0 // it answers: only ZeroWindowTimeout may end this
	}
	if len(c.out) == 0 {
		c.lastAckNr, c.dupAcks = h.ack, 0
		return
	}
	acked := seqDiff(h.ack, c.out[0].seq) + 1
	if acked < 0 || acked > len(c.out) {
		return // an old ACK, or one for packets we never sent
	}
	newBytes, progress := 0, false
	if acked > 0 {
		for _, p := range c.out[:acked] {
			if p.count == 1 && !p.sacked {
				c.rtt.sample(now.Sub(p.sentAt))
			}
			if !p.sacked {
				newBytes += p.payload
			}
			c.releaseLocked(p)
		}
		n := copy(c.out, c.out[acked:])
		clear(c.out[n:])
		c.out = c.out[:n]
		c.dupAcks, progress = 0, true
		signal(c.writable)
	} else if h.typ == stState && h.ack == c.lastAckNr && int(h.wnd) <= prevWnd {
		c.dupAcks++
		if c.dupAcks == dupAckThreshold && !c.out[0].sacked {
			c.markLostLocked(c.out[0])
		}
	}
	c.lastAckNr = h.ack
	if h.sack != nil && len(c.out) > 1 {
		// Bit i stands for ack+2+i, which is out[i+1] now that out[0] is ack+1.
		highest := -1
		for i := 0; i < 8*len(h.sack) && i+1 < len(c.out); i++ {
			if h.sack[i/8]&(1<<(i%8)) == 0 {
				continue
			}
			highest = i + 1
			p := c.out[i+1]
			if p.sacked {
				continue
			}
			p.sacked, progress = true, true
			newBytes += p.payload
			if p.inFlight {
				p.inFlight = false
				c.inFlight -= p.payload
			}
			if p.lost {
				p.lost = false
				c.lostCount--
			}
		}
		c.detectLossesLocked(highest)
	}
	if progress {
		if !c.zeroWndSince.IsZero() {
			c.zeroWndSince = now // a small window that moves is no reason to give up
		}
		c.timeouts = 0
		c.rto = c.rtt.rto()
		c.rtoAt = time.Time{}
		if len(c.out) > 0 {
			c.rtoAt = now.Add(c.rto)
		}
	}
	c.cc.onDelaySample(h.tsDiff, now)
	c.cc.onAck(newBytes)
}

// detectLossesLocked declares lost each unacknowledged packet below out[highest] after
// which at least dupAckThreshold packets, sent later than it was, were acknowledged
// selectively. It cuts the window once per window of data.
func (c *Conn) detectLossesLocked(highest int) {
	var top [dupAckThreshold]uint64 // the largest transmission orders of sacked packets above
	lostSeq, lost := uint16(0), false
	for i := highest; i >= 0; i-- {
		p := c.out[i]
		if p.sacked {
			for j := range top {
				if p.tx > top[j] {
					copy(top[j+1:], top[j:len(top)-1])
					top[j] = p.tx
					break
				}
			}
			continue
		}
		if !p.lost && top[dupAckThreshold-1] > p.tx {
			c.markLostLocked(p)
			lostSeq, lost = p.seq, true
		}
	}
	if lost && (!c.cutOnce || !seqLess(lostSeq, c.recoverSeq)) {
		c.cc.onLoss()
		c.cutOnce, c.recoverSeq = true, c.seq
	}
}

func (c *Conn) markLostLocked(p *outPacket) {
	if p.inFlight {
		p.inFlight = false
		c.inFlight -= p.payload
	}
	if !p.lost {
		p.lost = true
		c.lostCount++
	}
}

// releaseLocked forgets an acknowledged packet.
func (c *Conn) releaseLocked(p *outPacket) {
	if p.inFlight {
		c.inFlight -= p.payload
	}
	if p.lost {
		c.lostCount--
	}
	c.outBytes -= p.payload
	c.spare = append(c.spare, p)
}

// receiveDataLocked takes a data packet: in order into the read queue, ahead of a gap into
// the reorder buffer, anything else dropped. It acknowledges at once whatever is not plain
// in-order data, and in-order data once ackEvery bytes or ackEveryPackets packets of it are
// waiting, every second packet in quick mode (else within delayedAck).
func (c *Conn) receiveDataLocked(seq uint16, payload []byte, now time.Time) {
	d := seqDiff(seq, c.ack)
	if c.gotFin && !seqLess(seq, c.finSeq) {
		d = 0 // nothing comes after the FIN
	}
	room := c.recvWindowLocked()
	switch {
	case d <= 0:
		c.stats.Duplicates++
	case d == 1 && len(payload) <= room:
		c.recvQ.write(payload, c.s.cfg.RecvBuffer)
		c.ack = seq
		drained := c.drainReorderLocked()
		signal(c.readable)
		if now.Sub(c.lastInOrder) >= quickAckIdle {
			c.inOrderBytes = 0 // after a pause the sender may start slowly again
		}
		quick := c.inOrderBytes < quickAckBytes
		c.inOrderBytes += int64(len(payload))
		c.lastInOrder = now
		c.ackPending++
		c.ackBytes += len(payload)
		if !c.ackDueLocked(quick) && !drained && c.reorderCount == 0 {
			if c.ackAt.IsZero() || c.ackPending == 1 {
				c.ackAt = now.Add(delayedAck)
			}
			return
		}
	case d > 1 && d < reorderSlots && reorderCost(len(payload)) <= room:
		if c.reorder == nil {
			c.reorder = make([]reorderSlot, reorderSlots)
		}
		slot := &c.reorder[seq&(reorderSlots-1)]
		if slot.ok {
			c.stats.Duplicates++
			break
		}
		slot.data = append(c.s.getPayload(len(payload)), payload...)
		slot.ok = true
		c.reorderCount++
		c.reorderBytes += reorderCost(len(payload))
	}
	c.ackNow = true
}

// ackDueLocked reports whether the in-order data waiting for an ACK makes one due at the end
// of the read batch: every second packet in quick mode, else ackEvery bytes or
// ackEveryPackets packets.
func (c *Conn) ackDueLocked(quick bool) bool {
	if quick {
		return c.ackPending >= 2
	}
	return c.ackBytes >= c.ackEvery() || c.ackPending >= ackEveryPackets
}

// ackEvery is how many in-order payload bytes make an ACK due at the end of the read
// batch: ackEveryBytes, or an eighth of the receive buffer when that is less, so that the
// peer hears of the window it may fill long before it is full.
func (c *Conn) ackEvery() int {
	return min(ackEveryBytes, c.s.cfg.RecvBuffer/8)
}

// reorderCost is what a reordered payload counts against the receive window: the buffer
// it occupies.
func reorderCost(n int) int { return max(n, poolPayload) }

// drainReorderLocked moves packets that the last in-order one made contiguous into the
// read queue, and completes the FIN when its turn comes.
func (c *Conn) drainReorderLocked() bool {
	drained := false
	for c.reorderCount > 0 {
		slot := &c.reorder[(c.ack+1)&(reorderSlots-1)]
		if !slot.ok {
			break
		}
		c.recvQ.write(slot.data, c.s.cfg.RecvBuffer)
		c.reorderBytes -= reorderCost(len(slot.data))
		c.reorderCount--
		c.s.putPayload(slot.data)
		*slot = reorderSlot{}
		c.ack++
		drained = true
	}
	if c.gotFin && !c.eof && c.finSeq == c.ack+1 {
		c.ack = c.finSeq
		c.eof = true
		signal(c.readable)
		drained = true
	}
	return drained
}

func (c *Conn) receiveFinLocked(seq uint16) {
	if !c.gotFin && seqLess(c.ack, seq) {
		c.gotFin, c.finSeq = true, seq
		c.drainReorderLocked()
	}
	c.ackNow = true
}

// maybeFinishLocked removes a connection once its FIN is acknowledged and it is closed, or
// half-closed with the peer's FIN received too.
func (c *Conn) maybeFinishLocked() {
	if c.state == stateConnected && c.finSent && len(c.out) == 0 && (c.userClosed || c.eof) {
		c.failLocked(net.ErrClosed, false)
	}
}

// ---- timers ----

// armTimerLocked makes sure the timer fires by the connection's next deadline.
func (c *Conn) armTimerLocked(now time.Time) {
	if c.state == stateDone {
		return
	}
	next := c.lastRecv.Add(c.s.cfg.IdleTimeout)
	earliest := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	if c.state == stateConnected {
		earliest(c.lastSend.Add(c.s.cfg.KeepAlive))
	}
	if len(c.out) > 0 {
		earliest(c.rtoAt)
	}
	if c.ackPending > 0 {
		earliest(c.ackAt)
	}
	earliest(c.probeAt)
	if c.sparesIdleLocked() {
		earliest(c.lastSend.Add(spareLinger))
	}
	if !c.zeroWndSince.IsZero() {
		earliest(c.zeroWndSince.Add(c.s.cfg.ZeroWindowTimeout))
	}
	earliest(c.deadAt)
	if c.timer == nil {
		c.timer = time.AfterFunc(next.Sub(now), c.onTimer)
		c.timerAt = next
		return
	}
	if c.timerAt.IsZero() || next.Before(c.timerAt) {
		c.timer.Reset(next.Sub(now))
		c.timerAt = next
	}
}

func (c *Conn) onTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDone {
		return
	}
	now := time.Now()
	c.timerAt = time.Time{}
	switch {
	case !c.deadAt.IsZero() && !now.Before(c.deadAt):
		c.failLocked(ErrTimedOut, true)
		return
	case now.Sub(c.lastRecv) >= c.s.cfg.IdleTimeout:
		c.failLocked(ErrTimedOut, true)
		return
	case !c.zeroWndSince.IsZero() && now.Sub(c.zeroWndSince) >= c.s.cfg.ZeroWindowTimeout:
		c.failLocked(ErrZeroWindow, true)
		return
	}
	if len(c.out) > 0 && !c.rtoAt.IsZero() && !now.Before(c.rtoAt) {
		c.onRTOLocked(now)
		if c.state == stateDone {
			return
		}
	}
	if c.ackPending > 0 && !now.Before(c.ackAt) {
		c.sendStateLocked(now)
	}
	if !c.probeAt.IsZero() && !now.Before(c.probeAt) {
		c.probeLocked(now)
	}
	if c.state == stateConnected && now.Sub(c.lastSend) >= c.s.cfg.KeepAlive {
		c.sendStateLocked(now)
	}
	c.flushLocked(now)
	if c.sparesIdleLocked() && now.Sub(c.lastSend) >= spareLinger {
		c.dropSparesLocked()
	}
	c.armTimerLocked(now)
}

// sparesIdleLocked reports whether the connection holds spare packets with nothing to send
// or resend: spareLinger after its last send, it returns them.
func (c *Conn) sparesIdleLocked() bool {
	return len(c.spare) > 0 && len(c.out) == 0 && c.unsentBytes == 0
}

// onRTOLocked handles a retransmission timeout: back off, restart from one packet, and
// resend everything not acknowledged selectively (the SYN, before the connection is up).
func (c *Conn) onRTOLocked(now time.Time) {
	c.timeouts++
	c.stats.Timeouts++
	limit := c.s.cfg.MaxRetransmits
	if c.state == stateSynSent {
		limit = c.s.cfg.SYNRetransmits
	}
	if c.timeouts > limit {
		c.failLocked(ErrTimedOut, c.state != stateSynSent)
		return
	}
	c.rto = min(2*c.rto, maxRTO)
	c.rtoAt = now.Add(c.rto)
	if c.state == stateSynSent {
		c.transmitLocked(c.out[0], now)
		return
	}
	c.cc.onTimeout()
	c.cutOnce, c.recoverSeq = true, c.seq
	for _, p := range c.out {
		if !p.sacked {
			c.markLostLocked(p)
		}
	}
	if c.peerWnd < c.s.cfg.MaxPayload && c.inFlight == 0 {
		c.transmitLocked(c.out[0], now) // a closed window must not stop the retransmission
	}
}

// ---- ending ----

func (c *Conn) closeEstablishedLocked() {
	if !c.estClosed {
		c.estClosed = true
		close(c.established)
	}
}

func (c *Conn) closeDeadLocked() {
	if !c.deadClosed {
		c.deadClosed = true
		close(c.dead)
	}
}

// failLocked ends the connection with err (net.ErrClosed for a clean end), optionally
// telling the peer with ST_RESET, and removes it from the socket.
func (c *Conn) failLocked(err error, reset bool) {
	if c.state == stateDone {
		return
	}
	if reset && c.state != stateSynSent {
		h := c.headerLocked(stReset, c.seq, time.Now())
		c.sendRawLocked(appendHeader(c.ctlBuf[:0], h), time.Now())
	}
	wasHalfOpen := c.state == stateSynRecv
	c.state = stateDone
	c.err = err
	c.closeEstablishedLocked()
	c.closeDeadLocked()
	signal(c.readable)
	signal(c.writable)
	if c.timer != nil {
		c.timer.Stop()
	}
	clear(c.txq) // their buffers go back to the pool
	c.txq = nil
	for _, p := range c.out {
		c.s.putPacket(p)
	}
	c.out, c.outBytes, c.inFlight, c.lostCount = nil, 0, 0, 0
	for i := range c.reorder {
		if c.reorder[i].ok {
			c.s.putPayload(c.reorder[i].data)
		}
	}
	c.reorder, c.reorderBytes, c.reorderCount = nil, 0, 0
	for _, p := range c.unsent[c.unsentHead:] {
		c.s.putPacket(p)
	}
	c.dropSparesLocked()
	c.unsent, c.unsentHead, c.unsentBytes, c.spare = nil, 0, 0, nil
	c.s.remove(c, wasHalfOpen)
}
