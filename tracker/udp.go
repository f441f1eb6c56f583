package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/gotfs/gotfs/torrentfile"
)

// BEP 15 constants.
const (
	udpProtocolID  uint64 = 0x41727101980
	actionConnect  uint32 = 0
	actionAnnounce uint32 = 1
	actionScrape   uint32 = 2
	actionError    uint32 = 3

	udpConnectLen      = 16
	udpAnnounceLen     = 98
	udpAnnounceHdrLen  = 20
	udpScrapeHdrLen    = 8
	udpMaxScrapeHashes = 74 // what fits a safe datagram (BEP 15)
	udpMaxPacket       = 65536
	udpMaxMessageLen   = 1024
)

// udpReply is one parsed tracker datagram.
type udpReply struct {
	action uint32
	txID   uint32

	connID uint64 // connect

	interval, leechers, seeders int64  // announce
	peers                       []byte // announce: compact peers, raw

	scrape []ScrapeResult // scrape, in request order

	message string // error
}

// parseUDPReply parses a datagram received from a UDP tracker. It checks sizes only; whether
// the action and transaction id are the expected ones is the caller's business.
func parseUDPReply(b []byte) (udpReply, error) {
	var r udpReply
	if len(b) < 8 {
		return r, fmt.Errorf("UDP tracker packet too short (%d bytes)", len(b))
	}
	r.action = binary.BigEndian.Uint32(b[0:4])
	r.txID = binary.BigEndian.Uint32(b[4:8])
	switch r.action {
	case actionConnect:
		if len(b) < udpConnectLen {
			return r, fmt.Errorf("UDP connect reply too short (%d bytes)", len(b))
		}
		r.connID = binary.BigEndian.Uint64(b[8:16])
	case actionAnnounce:
		if len(b) < udpAnnounceHdrLen {
			return r, fmt.Errorf("UDP announce reply too short (%d bytes): the tracker may not serve this torrent", len(b))
		}
		r.interval = int64(int32(binary.BigEndian.Uint32(b[8:12])))
		r.leechers = int64(int32(binary.BigEndian.Uint32(b[12:16])))
		r.seeders = int64(int32(binary.BigEndian.Uint32(b[16:20])))
		r.peers = b[20:]
	case actionScrape:
		rest := b[udpScrapeHdrLen:]
		n := len(rest) / 12
		if n > udpMaxScrapeHashes {
			n = udpMaxScrapeHashes
		}
		r.scrape = make([]ScrapeResult, n)
		for i := range r.scrape {
			e := rest[i*12:]
			r.scrape[i] = ScrapeResult{
				Seeders:   clampCount(int64(int32(binary.BigEndian.Uint32(e[0:4])))),
				Completed: clampCount(int64(int32(binary.BigEndian.Uint32(e[4:8])))),
				Leechers:  clampCount(int64(int32(binary.BigEndian.Uint32(e[8:12])))),
			}
		}
	case actionError:
		msg := b[8:]
		if len(msg) > udpMaxMessageLen {
			msg = msg[:udpMaxMessageLen]
		}
		r.message = sanitizeMessage(msg)
	default:
		return r, fmt.Errorf("UDP tracker packet has unknown action %d", r.action)
	}
	return r, nil
}

// sanitizeMessage turns tracker-supplied bytes into a printable single-line string.
func sanitizeMessage(b []byte) string {
	out := make([]rune, 0, len(b))
	for _, r := range string(b) {
		switch {
		case r == '\uFFFD', r < 0x20, r == 0x7f:
			out = append(out, '?')
		default:
			out = append(out, r)
		}
	}
	return string(out)
}

// announceFromUDP builds the response from a parsed announce reply; ipv6 says whether the
// peers are 18-byte IPv6 entries (the request went over IPv6).
func announceFromUDP(r udpReply, ipv6 bool, maxPeers int) *AnnounceResponse {
	ps := newPeerSet(maxPeers)
	if ipv6 {
		ps.addCompact(r.peers, 16)
	} else {
		ps.addCompact(r.peers, 4)
	}
	return &AnnounceResponse{
		Peers:    ps.peers,
		Interval: secondsToDuration(r.interval),
		Seeders:  clampCount(r.seeders),
		Leechers: clampCount(r.leechers),
	}
}

func udpConnectPacket(txID uint32) []byte {
	b := make([]byte, udpConnectLen)
	binary.BigEndian.PutUint64(b[0:8], udpProtocolID)
	binary.BigEndian.PutUint32(b[8:12], actionConnect)
	binary.BigEndian.PutUint32(b[12:16], txID)
	return b
}

// udpEvent maps our events onto BEP 15's numbering.
func udpEvent(e Event) uint32 {
	switch e {
	case EventCompleted:
		return 1
	case EventStarted:
		return 2
	case EventStopped:
		return 3
	default:
		return 0
	}
}

func udpAnnouncePacket(connID uint64, txID uint32, req AnnounceRequest) []byte {
	b := make([]byte, udpAnnounceLen)
	binary.BigEndian.PutUint64(b[0:8], connID)
	binary.BigEndian.PutUint32(b[8:12], actionAnnounce)
	binary.BigEndian.PutUint32(b[12:16], txID)
	copy(b[16:36], req.InfoHash[:])
	copy(b[36:56], req.PeerID[:])
	binary.BigEndian.PutUint64(b[56:64], uint64(req.Downloaded))
	binary.BigEndian.PutUint64(b[64:72], uint64(req.Left))
	binary.BigEndian.PutUint64(b[72:80], uint64(req.Uploaded))
	binary.BigEndian.PutUint32(b[80:84], udpEvent(req.Event))
	// b[84:88]: IP address 0 = the sender's.
	binary.BigEndian.PutUint32(b[88:92], req.Key)
	numWant := int32(-1)
	if req.NumWant > 0 {
		numWant = int32(min(req.NumWant, 1<<31-1))
	}
	binary.BigEndian.PutUint32(b[92:96], uint32(numWant))
	binary.BigEndian.PutUint16(b[96:98], req.Port)
	return b
}

func udpScrapePacket(connID uint64, txID uint32, hashes []torrentfile.Hash) []byte {
	b := make([]byte, 16, 16+20*len(hashes))
	binary.BigEndian.PutUint64(b[0:8], connID)
	binary.BigEndian.PutUint32(b[8:12], actionScrape)
	binary.BigEndian.PutUint32(b[12:16], txID)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// TrackerError is a refusal sent by the tracker itself: an HTTP "failure reason" or a UDP
// error packet. Other errors are transport or format problems.
type TrackerError struct {
	Message string
}

// Error implements error.
func (e *TrackerError) Error() string { return "tracker refused: " + e.Message }

// errConnIDExpired means a retransmission would reuse a connection id past its lifetime.
var errConnIDExpired = errors.New("UDP connection id expired")

// udpSession is one exchange with a UDP tracker over a connected socket.
type udpSession struct {
	c    *Client
	conn *net.UDPConn
	key  string // tracker address, the connection id cache key
	ipv6 bool
	n    int // BEP 15 backoff exponent, shared by all packets of the call
	buf  []byte
}

// udpDial resolves the tracker's host and connects a UDP socket to it.
func (c *Client) udpDial(ctx context.Context, u *url.URL) (*udpSession, error) {
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("bad UDP tracker port %q", u.Port())
	}
	host := u.Hostname()
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, lerr)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
		addr = addrs[0]
		for _, a := range addrs { // prefer IPv4: every UDP tracker speaks it
			if a.Unmap().Is4() {
				addr = a
				break
			}
		}
	}
	addr = addr.Unmap().WithZone("")
	ap := netip.AddrPortFrom(addr, uint16(port))
	var local *net.UDPAddr
	if la := c.opts.LocalAddr; la.IsValid() && la.Unmap().Is4() == addr.Is4() {
		local = &net.UDPAddr{IP: la.AsSlice()}
	}
	conn, err := net.DialUDP("udp", local, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ap, err)
	}
	return &udpSession{c: c, conn: conn, key: ap.String(), ipv6: addr.Is6(), buf: make([]byte, udpMaxPacket)}, nil
}

// exchange sends the packet built for a fresh transaction id and waits for the reply with
// that id and action, retransmitting with BEP 15's backoff. Packets with another
// transaction id or action are ignored; an error packet for our transaction becomes a
// *TrackerError. When validUntil is set, a retransmission after it fails with
// errConnIDExpired.
//
// A tracker whose port is closed makes its host answer with ICMP port unreachable, which
// the connected socket reports as ECONNREFUSED. That is an answer, not a lost packet, so the
// backoff does not apply: the packet is sent once more after a short pause (a tracker being
// restarted may be back), and a second refusal, or no reply within
// udpRefusedRetryWait, fails the exchange with an error wrapping syscall.ECONNREFUSED.
func (s *udpSession) exchange(ctx context.Context, build func(txID uint32) []byte, want uint32, validUntil time.Time) (udpReply, error) {
	txID := rand.Uint32()
	pkt := build(txID)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	refused := false // the tracker refused once; the packet in flight is the quick retry
	for {
		wait := s.c.opts.UDPRetransmitBase << s.n
		if refused {
			wait = min(wait, udpRefusedRetryWait)
		}
		r, err := s.attempt(ctx, pkt, txID, want, wait)
		switch {
		case err == nil:
			return r, nil
		case errors.Is(err, errRefused):
			if refused {
				return udpReply{}, s.refusedError()
			}
			refused = true
			s.c.log.Debug("UDP tracker refused, retrying once", "tracker", s.key)
			if err := sleepCtx(ctx, min(s.c.opts.UDPRetransmitBase, udpRefusedRetryDelay)); err != nil {
				return udpReply{}, err
			}
			if !validUntil.IsZero() && time.Now().After(validUntil) {
				return udpReply{}, errConnIDExpired
			}
			continue
		case errors.Is(err, errTimeout):
			if refused { // refused, then silent: the refusal is the last word
				return udpReply{}, s.refusedError()
			}
		default:
			return udpReply{}, err
		}
		if s.n >= s.c.opts.UDPMaxRetransmits {
			return udpReply{}, fmt.Errorf("no reply after %d retransmissions", s.n)
		}
		s.n++
		if !validUntil.IsZero() && time.Now().After(validUntil) {
			return udpReply{}, errConnIDExpired
		}
		s.c.log.Debug("UDP tracker retransmit", "tracker", s.key, "n", s.n)
	}
}

// attempt sends pkt once and waits up to wait for the matching reply.
func (s *udpSession) attempt(ctx context.Context, pkt []byte, txID, want uint32, wait time.Duration) (udpReply, error) {
	if _, err := s.conn.Write(pkt); err != nil {
		if ctx.Err() != nil {
			return udpReply{}, context.Cause(ctx)
		}
		if errors.Is(err, syscall.ECONNREFUSED) { // a refusal of an earlier packet
			return udpReply{}, errRefused
		}
		return udpReply{}, fmt.Errorf("send: %w", err)
	}
	return s.await(ctx, txID, want, time.Now().Add(wait))
}

// refusedError is the error of an exchange the tracker's host refused.
func (s *udpSession) refusedError() error {
	return fmt.Errorf("udp tracker %s: %w", s.key, syscall.ECONNREFUSED)
}

// Refused ports: the pause before the one quick retry (at most UDPRetransmitBase) and how
// long that retry waits for a reply (at most the current backoff step).
const (
	udpRefusedRetryDelay = 200 * time.Millisecond
	udpRefusedRetryWait  = time.Second
)

// errRefused is await's and attempt's report of ECONNREFUSED on the socket.
var errRefused = errors.New("refused")

var errTimeout = errors.New("timeout")

// await reads datagrams until one matches txID and want, the deadline passes (errTimeout),
// the tracker's host refuses (errRefused) or ctx ends.
func (s *udpSession) await(ctx context.Context, txID, want uint32, deadline time.Time) (udpReply, error) {
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return udpReply{}, fmt.Errorf("set deadline: %w", err)
	}
	if ctx.Err() != nil { // AfterFunc may have run before the deadline above replaced its own
		return udpReply{}, context.Cause(ctx)
	}
	for {
		n, err := s.conn.Read(s.buf)
		if err != nil {
			if ctx.Err() != nil {
				return udpReply{}, context.Cause(ctx)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return udpReply{}, errTimeout
			}
			if errors.Is(err, net.ErrClosed) {
				return udpReply{}, fmt.Errorf("receive: %w", err)
			}
			if errors.Is(err, syscall.ECONNREFUSED) { // ICMP port unreachable
				return udpReply{}, errRefused
			}
			// Other ICMP errors (host or network unreachable) surface as read errors on
			// a connected socket too; they may be transient, so treat them like a lost
			// packet and let the backoff apply.
			s.c.log.Debug("UDP tracker read error", "tracker", s.key, "err", err)
			if time.Now().After(deadline) {
				return udpReply{}, errTimeout
			}
			if werr := sleepCtx(ctx, min(time.Until(deadline), 100*time.Millisecond)); werr != nil {
				return udpReply{}, werr
			}
			continue
		}
		r, perr := parseUDPReply(s.buf[:n])
		if perr != nil {
			if n >= 8 && r.txID == txID && r.action == want {
				// Ours, but malformed. opentracker answers an announce for a torrent it
				// does not serve with a bare 8-byte header.
				return udpReply{}, perr
			}
			s.c.log.Debug("UDP tracker sent a bad packet", "tracker", s.key, "err", perr)
			continue
		}
		if r.txID != txID {
			s.c.log.Debug("UDP tracker packet with another transaction id ignored", "tracker", s.key)
			continue
		}
		if r.action == actionError {
			return r, &TrackerError{Message: r.message}
		}
		if r.action != want {
			s.c.log.Debug("UDP tracker packet with unexpected action ignored", "tracker", s.key, "action", r.action)
			continue
		}
		if r.action == actionAnnounce && len(r.peers) > 0 {
			// r.peers aliases s.buf; copy before the next read can overwrite it.
			r.peers = append([]byte(nil), r.peers...)
		}
		return r, nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// connectionID returns a cached connection id for the tracker or obtains a new one. cached
// reports whether it came from the cache.
func (s *udpSession) connectionID(ctx context.Context) (id uint64, validUntil time.Time, cached bool, err error) {
	now := time.Now()
	s.c.mu.Lock()
	e, ok := s.c.connIDs[s.key]
	s.c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.id, e.expires, true, nil
	}
	r, err := s.exchange(ctx, udpConnectPacket, actionConnect, time.Time{})
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("connect: %w", err)
	}
	e = udpConnID{id: r.connID, expires: time.Now().Add(s.c.connIDLifetime)}
	s.c.mu.Lock()
	s.c.connIDs[s.key] = e
	s.c.mu.Unlock()
	return e.id, e.expires, false, nil
}

func (s *udpSession) forgetConnectionID() {
	s.c.mu.Lock()
	delete(s.c.connIDs, s.key)
	s.c.mu.Unlock()
}

// request runs one connect-then-request exchange, reconnecting when the connection id
// expires and retrying once with a fresh id when a cached one is refused.
func (s *udpSession) request(ctx context.Context, build func(connID uint64, txID uint32) []byte, want uint32) (udpReply, error) {
	retried := false
	for {
		id, validUntil, cached, err := s.connectionID(ctx)
		if err != nil {
			return udpReply{}, err
		}
		r, err := s.exchange(ctx, func(tx uint32) []byte { return build(id, tx) }, want, validUntil)
		var te *TrackerError
		switch {
		case err == nil:
			return r, nil
		case errors.Is(err, errConnIDExpired):
			s.forgetConnectionID()
			continue
		case errors.As(err, &te) && cached && !retried:
			// The tracker may have forgotten our connection id; try once with a new one.
			s.forgetConnectionID()
			retried = true
			continue
		default:
			return udpReply{}, err
		}
	}
}

func (c *Client) udpAnnounce(ctx context.Context, u *url.URL, req AnnounceRequest) (*AnnounceResponse, error) {
	s, err := c.udpDial(ctx, u)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	r, err := s.request(ctx, func(id uint64, tx uint32) []byte { return udpAnnouncePacket(id, tx, req) }, actionAnnounce)
	if err != nil {
		return nil, err
	}
	return announceFromUDP(r, s.ipv6, c.opts.MaxPeers), nil
}

func (c *Client) udpScrape(ctx context.Context, u *url.URL, hashes []torrentfile.Hash) (map[torrentfile.Hash]ScrapeResult, error) {
	s, err := c.udpDial(ctx, u)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	res := make(map[torrentfile.Hash]ScrapeResult, len(hashes))
	for len(hashes) > 0 {
		chunk := hashes[:min(len(hashes), udpMaxScrapeHashes)]
		hashes = hashes[len(chunk):]
		r, err := s.request(ctx, func(id uint64, tx uint32) []byte { return udpScrapePacket(id, tx, chunk) }, actionScrape)
		if err != nil {
			return nil, err
		}
		for i, sr := range r.scrape {
			if i < len(chunk) {
				res[chunk[i]] = sr
			}
		}
	}
	return res, nil
}
