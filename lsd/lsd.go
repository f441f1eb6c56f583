// Package lsd is BEP 14 Local Service Discovery: peers on the same local network find each
// other without a tracker or the DHT by multicasting announces ("I have these torrents, on
// this port") to 239.192.152.143:6771 and [ff15::efc0:988f]:6771.
//
// A Service announces the info hashes its caller lists and reports the peers that announce
// them back. It is mechanism only: the caller decides which torrents may be found this way,
// and must never list a private torrent (BEP 27: a private torrent's peers come from its
// trackers alone).
//
// Limits. Each torrent is announced when it first appears and then every Config.Interval
// (5 minutes by default, never more often than once a minute, as BEP 14 asks). Received
// datagrams are hostile: longer than MaxMessage they are dropped unread; at most
// maxMessagesPerSecond are parsed, from every source together; announces that name none of
// our torrents are dropped; a source gets at most reportBurst reports at once, then one per
// reportRefill; and the same (torrent, peer) pair is reported at most once per
// reportDedupe. The tables behind these limits are bounded (maxSources, maxRecent).
package lsd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The multicast groups of BEP 14.
const (
	Group4 = "239.192.152.143:6771"
	Group6 = "[ff15::efc0:988f]:6771"
)

const (
	// DefaultInterval is how often each torrent is announced again.
	DefaultInterval = 5 * time.Minute
	// MinInterval is the least time between two announces of one torrent (BEP 14).
	MinInterval = time.Minute

	tick                 = 200 * time.Millisecond // how often Config.Torrents is polled
	maxMessagesPerSecond = 200
	maxSources           = 256
	reportBurst          = 32
	reportRefill         = 2 * time.Second
	maxRecent            = 4096
	reportDedupe         = time.Minute
)

// Config configures a Service.
type Config struct {
	// Port is the peer port announced (required).
	Port uint16
	// Torrents returns the info hashes to announce now. It is called five times a second
	// from the Service's goroutine. Private torrents must never be in it.
	Torrents func() [][20]byte
	// OnPeer receives each peer found: it announced infoHash, one of ours, from peer. It is
	// called from the Service's receive goroutine, with no lock held; it must not block.
	OnPeer func(infoHash [20]byte, peer netip.AddrPort)
	// Interval is the time between two announces of a torrent (default DefaultInterval; at
	// least MinInterval).
	Interval time.Duration
	// LocalAddr, when valid, is the IPv4 address announces leave from (and the interface
	// that has it): peers dial that address. Use the peer listener's address when it has one.
	LocalAddr netip.Addr
	// Interface is the network interface to join the groups on and to send on; nil lets
	// the kernel choose by its routes.
	Interface *net.Interface
	// NoIPv6 leaves out the IPv6 group.
	NoIPv6 bool
	// Group4 and Group6 override the multicast groups (tests); "" means the BEP 14 ones.
	Group4, Group6 string
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Stats counts what a Service did.
type Stats struct {
	// Sent counts announces sent (one datagram per family per batch of info hashes).
	Sent int64
	// Received counts datagrams read; Dropped those refused (malformed, too long, over a
	// rate, ours, or naming none of our torrents); Reported the (torrent, peer) pairs handed to OnPeer.
	Received, Dropped, Reported int64
}

// Service announces torrents on the local network and reports the peers that announce them.
type Service struct {
	cfg    Config
	log    *slog.Logger
	cookie string
	fams   []*family
	done   chan struct{}
	wg     sync.WaitGroup

	sent, received, dropped, reported atomic.Int64

	// mu guards ours (the info hashes last listed by Config.Torrents), the rate limits and
	// the dedupe table.
	mu      sync.Mutex
	ours    map[[20]byte]bool
	limiter limiter
}

// family is one address family's sockets.
type family struct {
	name  string
	group *net.UDPAddr
	host  string       // the Host header: the group as host:port
	recv  *net.UDPConn // bound to the group's port, joined to the group
	send  *net.UDPConn // where announces leave from
}

// New opens the sockets and starts announcing and listening. It fails only when no family
// could be opened; a family that fails (IPv6 often has no multicast route) is logged and left
// out.
func New(cfg Config) (*Service, error) {
	if cfg.Port == 0 {
		return nil, errors.New("lsd: no port to announce")
	}
	if cfg.Torrents == nil || cfg.OnPeer == nil {
		return nil, errors.New("lsd: Torrents and OnPeer are required")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	cfg.Interval = max(cfg.Interval, MinInterval)
	if cfg.Group4 == "" {
		cfg.Group4 = Group4
	}
	if cfg.Group6 == "" {
		cfg.Group6 = Group6
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var c [4]byte
	if _, err := rand.Read(c[:]); err != nil {
		return nil, fmt.Errorf("lsd: cookie: %w", err)
	}
	s := &Service{cfg: cfg, log: log, cookie: hex.EncodeToString(c[:]), done: make(chan struct{}),
		ours: map[[20]byte]bool{}, limiter: newLimiter()}
	var errs []error
	groups := []string{cfg.Group4}
	if !cfg.NoIPv6 {
		groups = append(groups, cfg.Group6)
	}
	for _, g := range groups {
		f, err := openFamily(g, cfg.Interface, cfg.LocalAddr)
		if err != nil {
			errs = append(errs, err)
			log.Debug("lsd: family left out", "group", g, "err", err)
			continue
		}
		s.fams = append(s.fams, f)
	}
	if len(s.fams) == 0 {
		return nil, fmt.Errorf("lsd: %w", errors.Join(errs...))
	}
	// Our torrents are known before the first datagram is read: an announce that comes in
	// before the announce loop's first round still finds them.
	for _, h := range cfg.Torrents() {
		s.ours[h] = true
	}
	for _, f := range s.fams {
		s.wg.Add(1)
		go s.receiveLoop(f)
	}
	s.wg.Add(1)
	go s.announceLoop()
	return s, nil
}

// openFamily joins group and opens the socket announces leave from.
func openFamily(group string, ifi *net.Interface, local netip.Addr) (*family, error) {
	ap, err := netip.ParseAddrPort(group)
	if err != nil || !ap.Addr().IsMulticast() {
		return nil, fmt.Errorf("group %q: not a multicast address and port", group)
	}
	network, name := "udp4", "IPv4"
	if ap.Addr().Is6() {
		network, name = "udp6", "IPv6"
	}
	gaddr := net.UDPAddrFromAddrPort(ap)
	recv, err := net.ListenMulticastUDP(network, ifi, gaddr)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", group, err)
	}
	laddr := &net.UDPAddr{}
	if local.IsValid() && local.Is4() == ap.Addr().Is4() {
		laddr.IP = local.AsSlice()
	}
	send, err := net.ListenUDP(network, laddr)
	if err == nil {
		err = setMulticastInterface(send, ap.Addr().Is4(), ifi, laddr.IP)
	}
	if err != nil {
		recv.Close()
		if send != nil {
			send.Close()
		}
		return nil, fmt.Errorf("%s announce socket: %w", name, err)
	}
	return &family{name: name, group: gaddr, host: group, recv: recv, send: send}, nil
}

// setMulticastInterface makes the socket's multicast leave by ifi, or by the interface that has
// local; with neither the kernel's routes decide.
func setMulticastInterface(c *net.UDPConn, v4 bool, ifi *net.Interface, local net.IP) error {
	if ifi == nil && local == nil {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if !v4 {
			if ifi != nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index)
			}
			return
		}
		m := &unix.IPMreqn{}
		if ifi != nil {
			m.Ifindex = int32(ifi.Index)
		}
		if ip4 := local.To4(); ip4 != nil {
			copy(m.Address[:], ip4)
		}
		serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, m)
	})
	if err != nil {
		return err
	}
	return serr
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Received: s.received.Load(), Dropped: s.dropped.Load(), Reported: s.reported.Load()}
}

// Close stops announcing and listening, and waits for the Service's goroutines.
func (s *Service) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	var errs []error
	for _, f := range s.fams {
		errs = append(errs, f.recv.Close(), f.send.Close())
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// announceLoop polls Config.Torrents every tick and announces each torrent when it appears
// and every Interval after, several torrents to a datagram.
func (s *Service) announceLoop() {
	defer s.wg.Done()
	last := map[[20]byte]time.Time{} // when each torrent was last announced
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		now := time.Now()
		hashes := s.cfg.Torrents()
		ours := make(map[[20]byte]bool, len(hashes))
		var due [][20]byte
		for _, h := range hashes {
			ours[h] = true
			if at, ok := last[h]; !ok || now.Sub(at) >= s.cfg.Interval {
				due = append(due, h)
				last[h] = now
			}
		}
		// A torrent removed and added again within Interval is not announced again early.
		for h, at := range last {
			if !ours[h] && now.Sub(at) >= s.cfg.Interval {
				delete(last, h)
			}
		}
		s.mu.Lock()
		s.ours = ours
		s.mu.Unlock()
		for len(due) > 0 {
			n := min(len(due), MaxInfoHashes)
			s.send(due[:n])
			due = due[n:]
		}
		select {
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

// send multicasts one announce of hashes on every family.
func (s *Service) send(hashes [][20]byte) {
	a := Announce{Port: s.cfg.Port, InfoHashes: hashes, Cookie: s.cookie}
	for _, f := range s.fams {
		if _, err := f.send.WriteToUDP(a.Encode(f.host), f.group); err != nil {
			s.log.Debug("lsd: announce", "family", f.name, "err", err)
			continue
		}
		s.sent.Add(1)
	}
}

// receiveLoop reads announces from one family's group until Close.
func (s *Service) receiveLoop(f *family) {
	defer s.wg.Done()
	buf := make([]byte, MaxMessage+1)
	for {
		n, from, err := f.recv.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("lsd: read", "family", f.name, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.received.Add(1)
		if !s.handle(buf[:n], from, time.Now()) {
			s.dropped.Add(1)
		}
	}
}

// handle checks one datagram and reports the peer for each of our torrents it names. It
// reports whether the datagram was accepted.
func (s *Service) handle(b []byte, from netip.AddrPort, now time.Time) bool {
	src := from.Addr()
	if len(b) > MaxMessage || !src.IsValid() || src.IsUnspecified() || src.IsMulticast() {
		return false
	}
	s.mu.Lock()
	ok := s.limiter.message(now)
	s.mu.Unlock()
	if !ok {
		return false
	}
	a, err := ParseAnnounce(b)
	if err != nil {
		s.log.Debug("lsd: bad announce", "from", from, "err", err)
		return false
	}
	if a.Cookie == s.cookie {
		return false // our own, looped back
	}
	peer := netip.AddrPortFrom(src.Unmap(), a.Port)
	var found [][20]byte
	s.mu.Lock()
	for _, ih := range a.InfoHashes {
		if s.ours[ih] && s.limiter.report(ih, peer, now) {
			found = append(found, ih)
		}
	}
	s.mu.Unlock()
	for _, ih := range found {
		s.reported.Add(1)
		s.cfg.OnPeer(ih, peer)
	}
	return len(found) > 0
}
