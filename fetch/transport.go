package fetch

// Transports: TCP and uTP (package p2p/utp) on one port number. Inputs weighed when dialling:
// Config.Transport; per candidate whether uTP worked, failed, or the peer advertised it (PEX
// flag 0x04); whether the client has a uTP socket of the candidate's address family. As
// libtorrent does, uTP is tried first (to every peer not known to lack it: BEP 10 has no uTP
// flag, and peers from trackers and the DHT mostly speak it) with a short timeout, then TCP;
// each candidate remembers what worked. Re-check these when making changes.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/p2p/utp"
)

// Transport chooses the transports the client speaks to peers.
type Transport int

const (
	// TransportBoth (the default) accepts TCP and uTP; it dials uTP first to peers that
	// advertised it or spoke it before, TCP first to the others (connectPeer).
	TransportBoth Transport = iota
	// TransportUTP accepts and dials uTP only: the client opens no TCP socket.
	TransportUTP
	// TransportTCP accepts and dials TCP only: the client opens no UDP socket.
	TransportTCP
)

// String returns the setting's name, as ParseTransport takes it.
func (t Transport) String() string {
	switch t {
	case TransportBoth:
		return "both"
	case TransportUTP:
		return "utp"
	case TransportTCP:
		return "tcp"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// ParseTransport parses "both", "utp" or "tcp".
func ParseTransport(s string) (Transport, error) {
	for _, t := range []Transport{TransportBoth, TransportUTP, TransportTCP} {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("transport %q: want both, utp or tcp", s)
}

func (t Transport) tcp() bool { return t != TransportUTP }
func (t Transport) utp() bool { return t != TransportTCP }

// defaultUTPConnectTimeout is how long a uTP connection attempt may take before TCP is tried
// (libtorrent's utp_connect_timeout is 3 s too).
const defaultUTPConnectTimeout = 3 * time.Second

// Listener is a client's sockets on its peer port: a TCP listener and a uTP socket (UDP) on
// the same port number, as the transports ask. The uTP socket hands the datagrams that are not
// uTP to DHTConns, so that the DHT can share the port. A Client owns the Listener it is given.
type Listener struct {
	tr   Transport
	tcp  net.Listener // nil with TransportUTP
	utp  *utp.Socket  // nil with TransportTCP
	addr netip.AddrPort
}

// ListenOptions tune Listen; the zero value is usable.
type ListenOptions struct {
	// Logger receives the uTP socket's debug logs; nil discards them.
	Logger *slog.Logger
	// wrapUDP, when set, wraps the UDP socket before uTP runs over it (tests model NATs).
	wrapUDP func(net.PacketConn) net.PacketConn
}

// listenTries bounds the attempts to find a port number free for both TCP and UDP when any
// port will do.
const listenTries = 16

// Listen opens the peer sockets on addr ("host:port"; no host: every address of both
// families, as one dual-stack socket) for the transports tr. With both transports the TCP
// and UDP sockets get the same port number; port 0 picks one free for both.
func Listen(addr string, tr Transport, opts ListenOptions) (*Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen for peers on %s: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("listen for peers on %s: bad port %q", addr, portStr)
	}
	for try := 0; ; try++ {
		l, err := listenOnce(host, uint16(port), tr, opts)
		if err == nil || port != 0 || try+1 >= listenTries || !errors.Is(err, errUDPPortTaken) {
			return l, err
		}
	}
}

var errUDPPortTaken = errors.New("the UDP port is taken")

func listenOnce(host string, port uint16, tr Transport, opts ListenOptions) (*Listener, error) {
	l := &Listener{tr: tr}
	hostPort := func(p uint16) string { return net.JoinHostPort(host, strconv.Itoa(int(p))) }
	if tr.tcp() {
		ln, err := net.Listen("tcp", hostPort(port))
		if err != nil {
			return nil, fmt.Errorf("listen for peers on %s: %w", hostPort(port), err)
		}
		l.tcp = ln
		l.addr = addrPortOf(ln.Addr())
		port = l.addr.Port()
	}
	if tr.utp() {
		pc, err := net.ListenPacket("udp", hostPort(port))
		if err != nil {
			if l.tcp != nil {
				l.tcp.Close()
				err = fmt.Errorf("%w: %w", errUDPPortTaken, err)
			}
			return nil, fmt.Errorf("listen for uTP peers on %s: %w", hostPort(port), err)
		}
		local := addrPortOf(pc.LocalAddr())
		if opts.wrapUDP != nil {
			pc = opts.wrapUDP(pc)
		}
		l.utp = utp.NewSocket(pc, utp.Config{Logger: opts.Logger})
		if l.tcp == nil {
			l.addr = local
		}
	}
	return l, nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Addr is the address the listener accepts peers on (both transports share its port).
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// DHTConns returns the uTP socket's PacketConn of the datagrams that are not uTP, for the
// IPv4 and the IPv6 DHT as dht.Config.Conn and Conn6 take them: the same one for both on a
// dual-stack socket, nil for a family the socket does not serve, both nil without uTP. The
// DHT may close them; the listener keeps working.
func (l *Listener) DHTConns() (conn4, conn6 net.PacketConn) {
	if l.utp == nil {
		return nil, nil
	}
	pc := l.utp.NonUTP()
	ip := addrPortOf(l.utp.Addr()).Addr()
	switch {
	case ip.Is4() || ip.Is4In6():
		return pc, nil
	case ip.IsUnspecified(): // [::]: dual-stack
		return pc, pc
	}
	return nil, pc
}

// Close closes the sockets. A Client closes its listener itself.
func (l *Listener) Close() error {
	var errs []error
	if l.tcp != nil {
		errs = append(errs, l.tcp.Close())
	}
	if l.utp != nil {
		if err := l.utp.Close(); !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// utpFor reports whether the client can reach addr over uTP: it has a socket of addr's family.
func (c *Client) utpFor(addr netip.AddrPort) bool {
	s := c.lis.utp
	if s == nil {
		return false
	}
	local := addrPortOf(s.Addr()).Addr()
	if local.IsUnspecified() && local.Is6() {
		return true // dual-stack
	}
	return local.Unmap().Is4() == addr.Addr().Unmap().Is4()
}

// utpState is what a candidate taught us about uTP.
type utpState uint8

const (
	utpUnknown    utpState = iota // not tried yet: TCP first, uTP when TCP cannot connect
	utpAdvertised                 // a PEX message flagged it (0x04): tried first
	utpWorks                      // a uTP connection was made
	utpFails                      // a uTP attempt failed where TCP then worked: TCP only
)

// connectPeer dials addr as the transports allow and does the handshake for infoHash (with
// the encryption policy, see connect). A peer that advertised uTP (PEX) or spoke it before is
// dialled over uTP first, bounded by the uTP connect timeout, then over TCP; any other over
// TCP first, then over uTP when TCP cannot even connect (a peer that takes only uTP, or one
// behind a NAT that forwards only UDP). It returns what the attempt taught about uTP and about
// encryption (fellBack), for the candidate to remember.
func (c *Client) connectPeer(ctx context.Context, addr netip.AddrPort, infoHash [20]byte, opts connectOptions) (*p2p.Conn, p2p.Handshake, connectResult, error) {
	var res connectResult
	canUTP := c.cfg.Transport.utp() && c.utpFor(addr) && opts.utp != utpFails
	canTCP := c.cfg.Transport.tcp()
	if !canUTP && !canTCP {
		return nil, p2p.Handshake{}, res, fmt.Errorf("dial %s: %w", addr, errNoTransport)
	}
	// try dials over one transport and does the handshake, noting what it learnt.
	try := func(overUTP bool) (*p2p.Conn, p2p.Handshake, error) {
		dial := c.dialTCP
		if overUTP {
			dial = c.dialUTP
		}
		conn, hs, fellBack, err := c.connect(ctx, addr, infoHash, opts.p2p, opts.plaintext || res.fellBack, dial)
		res.fellBack = res.fellBack || fellBack
		if err == nil && overUTP {
			res.utp = utpWorks
		}
		return conn, hs, err
	}
	utpFirst := canUTP && (opts.utp == utpAdvertised || opts.utp == utpWorks || !canTCP)
	conn, hs, err := try(utpFirst)
	// The other transport only when the first could not even connect.
	other, dialFailed := canUTP, errors.Is(err, errTCPDial)
	if utpFirst {
		other, dialFailed = canTCP, errors.Is(err, errUTPDial)
	}
	if err == nil || !other || !dialFailed || ctx.Err() != nil {
		return conn, hs, res, err
	}
	c.log.Debug("connection failed; trying the other transport", "peer", addr, "utp_first", utpFirst, "err", err)
	conn, hs, err = try(!utpFirst)
	if err == nil && utpFirst {
		res.utp = utpFails // uTP could not connect where TCP could: TCP only from now on
	}
	return conn, hs, res, err
}

// errUTPDial marks a uTP connection that could not be opened (no answer to the SYN, or a
// reset): the case TCP is tried for.
var errUTPDial = errors.New("uTP connection failed")

// errTCPDial marks a TCP connection that could not be opened (refused, unreachable, timed out):
// the case uTP is tried for when TCP went first.
var errTCPDial = errors.New("TCP connection failed")

// errNoTransport: uTP only, and no uTP socket of the peer's address family.
var errNoTransport = errors.New("no transport reaches this address")

// connectOptions are what connectPeer needs to know about a candidate.
type connectOptions struct {
	p2p       p2p.Options
	plaintext bool     // the candidate refused an encrypted handshake before
	utp       utpState // the candidate's uTP state
}

// connectResult is what a connection attempt taught about the candidate.
type connectResult struct {
	utp      utpState // utpWorks or utpFails when uTP was tried and TCP's result says which
	fellBack bool     // took plaintext after dropping an encrypted handshake
}

// dialUTP opens a uTP connection to addr, giving up after the uTP connect timeout.
func (c *Client) dialUTP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.utpConnectTimeout())
	defer cancel()
	nc, err := c.lis.utp.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUTPDial, err)
	}
	return nc, nil
}

func (c *Client) utpConnectTimeout() time.Duration {
	if c.cfg.utpConnectTimeout > 0 {
		return c.cfg.utpConnectTimeout
	}
	return defaultUTPConnectTimeout
}

// transportOf names the transport of a connection: "utp" or "tcp". (NetConn may be wrapped
// by MSE or the accept side's first-bytes reader; the address type is the transport's.)
func transportOf(conn *p2p.Conn) string {
	if _, ok := conn.NetConn().RemoteAddr().(*net.UDPAddr); ok {
		return "utp"
	}
	return "tcp"
}
