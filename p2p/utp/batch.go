package utp

import (
	"net/netip"
	"slices"
	"time"
)

// Batching. A connection queues the datagrams it transmits while it holds its lock
// (Conn.txq) and sends them together before it lets go (sendQueuedLocked); runs of
// equal-size datagrams leave in one system call where GSO works. The read loop hands every
// datagram of a read to its connection first and lets each connection answer once at the
// end (Conn.endBatchLocked): one ACK and one flush of new data per batch, not per packet.

const (
	// maxGSOSegments bounds the datagrams of one offloaded send (the kernel's
	// UDP_MAX_SEGMENTS is 64 on older kernels).
	maxGSOSegments = 64
	// maxGSOBytes bounds the bytes of one offloaded send: one IP packet's worth, for IPv4
	// and IPv6 alike.
	maxGSOBytes = 65000
)

// writeBatch sends datagrams to one peer, in order.
func (s *Socket) writeBatch(dgrams [][]byte, to netip.AddrPort) {
	for len(dgrams) > 0 {
		n := 1
		if s.gso.Load() && s.off.canSegment(to) {
			n = gsoRun(dgrams)
		}
		if n == 1 {
			if err := s.writeTo(dgrams[0], to); err != nil {
				s.log.Debug("utp: send", "peer", to, "err", err)
			}
			dgrams = dgrams[1:]
			continue
		}
		if err := s.off.send(dgrams[:n], to); err != nil {
			if gsoUnsupported(err) {
				s.log.Debug("utp: segmentation offload fails, sending datagrams one by one", "peer", to, "err", err)
				s.gso.Store(false)
				continue // the same datagrams again, one by one
			}
			s.log.Debug("utp: send", "peer", to, "err", err)
		} else {
			s.gsoSends.Add(1)
		}
		dgrams = dgrams[n:]
	}
}

// gsoRun is how many datagrams from the start of dgrams one offloaded send can carry: all
// of one size, except that the last may be shorter.
func gsoRun(dgrams [][]byte) int {
	size := len(dgrams[0])
	limit := min(len(dgrams), maxGSOSegments, maxGSOBytes/size)
	n := 1
	for n < limit && len(dgrams[n]) <= size {
		n++
		if len(dgrams[n-1]) < size {
			break
		}
	}
	return n
}

// sendQueuedLocked sends the datagrams transmitLocked queued.
func (c *Conn) sendQueuedLocked() {
	if len(c.txq) == 0 {
		return
	}
	c.s.writeBatch(c.txq, c.remote)
	clear(c.txq)
	c.txq = c.txq[:0]
}

// readBatch is the read loop's state across the datagrams of one read: the connections they
// went to, and the one whose lock it holds, so that a run of packets for one connection
// takes its lock once. It never holds two connection locks.
type readBatch struct {
	held    *Conn
	touched []*Conn
}

// lock makes c the held connection (and one that answers at the end of the batch).
func (rb *readBatch) lock(c *Conn) {
	if rb.held == c {
		return
	}
	rb.release()
	c.mu.Lock()
	rb.held = c
	if !slices.Contains(rb.touched, c) {
		rb.touched = append(rb.touched, c)
	}
}

// release lets go of the held connection.
func (rb *readBatch) release() {
	if rb.held != nil {
		rb.held.mu.Unlock()
		rb.held = nil
	}
}

// cached returns the held connection if it is the one for (from, id) and still in the
// socket's table, saving a look-up.
func (rb *readBatch) cached(from netip.AddrPort, id uint16) *Conn {
	if c := rb.held; c != nil && c.remote == from && c.recvID == id && c.state != stateDone {
		return c
	}
	return nil
}

// finish lets every touched connection answer, and releases them.
func (rb *readBatch) finish(now time.Time) {
	for i, c := range rb.touched {
		rb.lock(c)
		c.endBatchLocked(now)
		rb.touched[i] = nil
	}
	rb.release()
	rb.touched = rb.touched[:0]
}

// endBatchLocked answers the packets handlePacketLocked took from one read: it sends what
// the acknowledgements let out (which carries our ACK), an ACK of its own if one is still
// due, and re-arms the timer.
func (c *Conn) endBatchLocked(now time.Time) {
	if c.state == stateDone {
		return
	}
	c.flushLocked(now)
	if c.ackNow {
		c.sendStateLocked(now)
	}
	c.maybeFinishLocked()
	c.armTimerLocked(now)
}
