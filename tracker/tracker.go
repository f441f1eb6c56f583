// Package tracker speaks to BitTorrent trackers: HTTP(S) announce and scrape (BEP 3, compact
// peer lists BEP 23, IPv6 peers BEP 7), UDP trackers (BEP 15) and multi-tracker tiers with
// fail-over (BEP 12). It only moves announces and peer lists; deciding when to announce and
// what to do with the peers belongs to the caller.
//
// Every reply is treated as hostile: parsing never panics, allocations are bounded by
// ClientOptions (response size, peer count) and malformed replies produce errors that say
// what was wrong.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gotfs/gotfs/torrentfile"
)

// Event is the announce event (BEP 3 "event", BEP 15 event field).
type Event int

const (
	// EventNone is a regular re-announce.
	EventNone Event = iota
	// EventStarted is sent with the first announce of a download.
	EventStarted
	// EventCompleted is sent once when the download completes.
	EventCompleted
	// EventStopped is sent when the client stops the torrent.
	EventStopped
)

// String returns the event's name as the HTTP protocol spells it ("" for EventNone).
func (e Event) String() string {
	switch e {
	case EventStarted:
		return "started"
	case EventCompleted:
		return "completed"
	case EventStopped:
		return "stopped"
	default:
		return ""
	}
}

// AnnounceRequest is what a client tells a tracker about itself and one torrent.
type AnnounceRequest struct {
	InfoHash torrentfile.Hash
	PeerID   torrentfile.Hash
	// Port is the port our peer listener accepts connections on.
	Port                 uint16
	Uploaded, Downloaded int64
	Left                 int64 // bytes still missing; 0 makes us a seeder
	Event                Event
	// NumWant is how many peers we ask for. 0 or negative lets the tracker decide
	// (the parameter is omitted over HTTP, -1 is sent over UDP).
	NumWant int
	// Key identifies us across IP changes (sent as 8 hex digits over HTTP when non-zero).
	Key uint32
}

// AnnounceResponse is a tracker's answer to an announce.
type AnnounceResponse struct {
	// Peers holds the peers the tracker returned, IPv4 and IPv6, without duplicates and
	// without entries that cannot be dialled (port 0, unspecified address), at most
	// ClientOptions.MaxPeers of them. It may include our own address.
	Peers []netip.AddrPort
	// Interval is how long to wait before the next regular announce; MinInterval is the
	// shortest the tracker tolerates. Zero when the tracker did not say.
	Interval, MinInterval time.Duration
	// Seeders and Leechers are the swarm counts the tracker reported, -1 when unknown.
	Seeders, Leechers int
	// Warning is the tracker's "warning message", if any.
	Warning string
}

// ScrapeResult holds a tracker's counts for one torrent.
type ScrapeResult struct {
	Seeders, Completed, Leechers int
}

// ClientOptions configures a Client. The zero value is usable.
type ClientOptions struct {
	// Timeout bounds one Announce or Scrape call, retries and redirects included
	// (default 30 s). The caller's context can shorten it further.
	Timeout time.Duration
	// UserAgent is sent in HTTP requests (default "gotfs").
	UserAgent string
	// Logger receives debug messages (default: discard).
	Logger *slog.Logger

	// UDPRetransmitBase is the first UDP retransmission timeout; the n-th retransmission
	// waits UDPRetransmitBase·2ⁿ (BEP 15 uses 15 s, the default).
	UDPRetransmitBase time.Duration
	// UDPMaxRetransmits is the largest n of the backoff (BEP 15: 8, the default).
	UDPMaxRetransmits int
	// MaxResponseSize caps an HTTP reply body in bytes (default 1 MiB).
	MaxResponseSize int64
	// MaxPeers caps the peers kept from one reply (default 10000).
	MaxPeers int
	// MaxRedirects caps HTTP redirects followed (default 5).
	MaxRedirects int
	// Transport overrides the HTTP transport (tests, proxies). Nil uses a private clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// LocalAddr, when valid, is the source address of HTTP and UDP requests to trackers of
	// the same address family. Trackers take a peer's address from the request's source, so a
	// client that accepts peers on one address of a multi-address host announces from it.
	LocalAddr netip.Addr
}

// Defaults for ClientOptions' zero fields.
const (
	DefaultTimeout           = 30 * time.Second
	DefaultUDPRetransmitBase = 15 * time.Second
	DefaultUDPMaxRetransmits = 8
	DefaultMaxResponseSize   = 1 << 20
	DefaultMaxPeers          = 10000
	DefaultMaxRedirects      = 5
	defaultUserAgent         = "gotfs"
	// udpConnectionIDLifetime is how long a UDP connection id may be reused (BEP 15).
	udpConnectionIDLifetime = time.Minute
)

// Client announces to and scrapes trackers. It holds an HTTP client (timeouts, bounded
// redirects), a cache of UDP connection ids and the tracker ids trackers asked us to send
// back. A Client is safe for concurrent use.
type Client struct {
	opts      ClientOptions
	log       *slog.Logger
	http      *http.Client
	transport *http.Transport // owned transport, nil when the caller supplied one

	connIDLifetime time.Duration // udpConnectionIDLifetime; tests shorten it

	mu         sync.Mutex
	trackerIDs map[string]string    // announce URL → "tracker id"
	connIDs    map[string]udpConnID // "host:port" → connection id
	closed     bool
}

type udpConnID struct {
	id      uint64
	expires time.Time
}

// NewClient returns a Client configured by opts.
func NewClient(opts ClientOptions) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = defaultUserAgent
	}
	if opts.UDPRetransmitBase <= 0 {
		opts.UDPRetransmitBase = DefaultUDPRetransmitBase
	}
	if opts.UDPMaxRetransmits <= 0 {
		opts.UDPMaxRetransmits = DefaultUDPMaxRetransmits
	}
	if opts.MaxResponseSize <= 0 {
		opts.MaxResponseSize = DefaultMaxResponseSize
	}
	if opts.MaxPeers <= 0 {
		opts.MaxPeers = DefaultMaxPeers
	}
	if opts.MaxRedirects <= 0 {
		opts.MaxRedirects = DefaultMaxRedirects
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts:           opts,
		log:            log,
		connIDLifetime: udpConnectionIDLifetime,
		trackerIDs:     make(map[string]string),
		connIDs:        make(map[string]udpConnID),
	}
	rt := opts.Transport
	if rt == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
		c.transport.ResponseHeaderTimeout = opts.Timeout
		c.transport.MaxIdleConnsPerHost = 2
		if la := opts.LocalAddr; la.IsValid() {
			dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
			c.transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := *dialer
				if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().Is4() == la.Unmap().Is4() {
					d.LocalAddr = &net.TCPAddr{IP: la.AsSlice()}
				}
				return d.DialContext(ctx, network, addr)
			}
		}
		rt = c.transport
	}
	maxRedirects := opts.MaxRedirects
	c.http = &http.Client{
		Transport: rt,
		Timeout:   opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to unsupported scheme %q", req.URL.Scheme)
			}
			return nil
		},
	}
	return c
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("tracker: client closed")

// Close releases idle connections. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Announce tells the tracker at rawURL about us and returns its peers. rawURL may be
// http://, https:// or udp:// (udp://host:port or udp://host:port/announce; a UDP URL's
// path and query are not sent, BEP 41 is not implemented).
func (c *Client) Announce(ctx context.Context, rawURL string, req AnnounceRequest) (*AnnounceResponse, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	u, err := parseTrackerURL(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var resp *AnnounceResponse
	switch u.Scheme {
	case "udp":
		resp, err = c.udpAnnounce(ctx, u, req)
	default:
		resp, err = c.httpAnnounce(ctx, rawURL, u, req)
	}
	if err != nil {
		return nil, fmt.Errorf("announce to %s: %w", redactURL(u), err)
	}
	return resp, nil
}

// Scrape asks the tracker at rawURL for the swarm counts of hashes. Torrents the tracker
// does not know are absent from the result. For HTTP trackers the scrape URL is derived
// from the announce URL (BEP 48: the last path element must start with "announce");
// trackers whose URL does not follow that rule cannot be scraped.
func (c *Client) Scrape(ctx context.Context, rawURL string, hashes []torrentfile.Hash) (map[torrentfile.Hash]ScrapeResult, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	u, err := parseTrackerURL(rawURL)
	if err != nil {
		return nil, err
	}
	if len(hashes) == 0 {
		return map[torrentfile.Hash]ScrapeResult{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var res map[torrentfile.Hash]ScrapeResult
	switch u.Scheme {
	case "udp":
		res, err = c.udpScrape(ctx, u, hashes)
	default:
		res, err = c.httpScrape(ctx, u, hashes)
	}
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", redactURL(u), err)
	}
	return res, nil
}

// parseTrackerURL checks that rawURL is a tracker URL we can speak to.
func parseTrackerURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("tracker URL: %w", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("tracker URL %q has no host", rawURL)
		}
	case "udp":
		if u.Hostname() == "" || u.Port() == "" {
			return nil, fmt.Errorf("UDP tracker URL %q needs host:port", rawURL)
		}
	default:
		return nil, fmt.Errorf("tracker URL %q: unsupported scheme %q", rawURL, u.Scheme)
	}
	return u, nil
}

// redactURL returns the URL without its query (which may carry passkeys) for messages.
func redactURL(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	v.Fragment = ""
	v.User = nil
	return v.String()
}

// peerSet collects peers in order, dropping duplicates and undiallable entries, up to max.
type peerSet struct {
	max   int
	seen  map[netip.AddrPort]struct{}
	peers []netip.AddrPort
}

func newPeerSet(max int) *peerSet {
	return &peerSet{max: max, seen: make(map[netip.AddrPort]struct{})}
}

// add records p and reports whether more peers may be added.
func (s *peerSet) add(p netip.AddrPort) bool {
	if len(s.peers) >= s.max {
		return false
	}
	a := p.Addr().Unmap()
	if !a.IsValid() || a.IsUnspecified() || p.Port() == 0 {
		return true
	}
	p = netip.AddrPortFrom(a, p.Port())
	if _, dup := s.seen[p]; dup {
		return true
	}
	s.seen[p] = struct{}{}
	s.peers = append(s.peers, p)
	return len(s.peers) < s.max
}

// addCompact adds peers packed as address (4 or 16 bytes) + big-endian port; a trailing
// partial entry is ignored.
func (s *peerSet) addCompact(b []byte, addrLen int) {
	step := addrLen + 2
	for len(b) >= step {
		var ap netip.AddrPort
		if addrLen == 4 {
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5]))
		} else {
			ap = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])), uint16(b[16])<<8|uint16(b[17]))
		}
		if !s.add(ap) {
			return
		}
		b = b[step:]
	}
}

// secondsToDuration converts a tracker-supplied number of seconds, clamping hostile values
// into [0, one week].
func secondsToDuration(s int64) time.Duration {
	const maxSeconds = 7 * 24 * 3600
	if s < 0 {
		return 0
	}
	if s > maxSeconds {
		s = maxSeconds
	}
	return time.Duration(s) * time.Second
}

// clampCount converts a tracker-supplied count to int, clamping to [-1, 1<<31-1].
func clampCount(n int64) int {
	if n < 0 {
		return -1
	}
	if n > 1<<31-1 {
		return 1<<31 - 1
	}
	return int(n)
}
