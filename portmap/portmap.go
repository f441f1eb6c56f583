// Package portmap asks the local network's router to forward a port to us, so that peers on
// the Internet can connect: PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD (SSDP discovery,
// then the WANIPConnection or WANPPPConnection service's AddPortMapping). It reports the
// external address the router gives, renews each mapping before its lease ends and removes
// it at Close.
//
// Everything the network says is hostile: only the default gateway is asked and believed
// (PCP and NAT-PMP answers come on a socket connected to it; SSDP answers from anyone else
// are ignored, and a LOCATION or control URL must be an http URL on the gateway's own address,
// given as an IP); HTTP never follows a redirect or a proxy and connects to nothing but the
// gateway; answers are bounded in size (64 KiB, XML depth and token count) and time (5 s an
// HTTP exchange, about 4 s of retransmissions over UDP).
package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Method is a port mapping protocol.
type Method string

// The methods, in the order Start tries them by default.
const (
	PCP    Method = "pcp"
	NATPMP Method = "nat-pmp"
	UPnP   Method = "upnp"
)

// Protocol is the transport protocol of a mapping.
type Protocol string

// The protocols, spelt as UPnP spells them.
const (
	TCP Protocol = "TCP"
	UDP Protocol = "UDP"
)

const (
	// DefaultLifetime is the lease asked for each mapping.
	DefaultLifetime = time.Hour
	// retryMin and retryMax bound the wait before trying again when every method failed.
	retryMin = time.Minute
	retryMax = 30 * time.Minute
	// attemptTimeout bounds one method's attempt to map every port; closeTimeout the removal
	// of the mappings at Close.
	attemptTimeout = 15 * time.Second
	closeTimeout   = 3 * time.Second
)

// Config says what to map.
type Config struct {
	// TCPPort and UDPPort are our ports to map; 0 leaves that protocol out. The router is
	// asked for the same external port first.
	TCPPort, UDPPort uint16
	// Lifetime is the lease asked for (default DefaultLifetime); mappings are renewed at half
	// their granted lease.
	Lifetime time.Duration
	// Methods are tried in this order until one maps every port (default PCP, NAT-PMP, UPnP).
	Methods []Method
	// Gateway is the router to ask (default: the IPv4 default route's gateway).
	Gateway netip.Addr
	// Description names the mappings on the router (UPnP; default "gotfs").
	Description string
	// OnChange, if set, is called with the new status each time the mappings or the external
	// address change, and when mapping fails. It is called from the Mapper's goroutine.
	OnChange func(Status)
	// Logger receives the Mapper's logs; nil discards them.
	Logger *slog.Logger
}

// Mapping is one forwarded port.
type Mapping struct {
	Protocol Protocol
	// Internal is our port.
	Internal uint16
	// External is the address and port peers on the Internet connect to.
	External netip.AddrPort
	// Lifetime is the lease the router granted (0: until removed).
	Lifetime time.Duration
}

// Status is what the Mapper has now.
type Status struct {
	// Method is the protocol that made the mappings ("" when none is in place).
	Method Method
	// External is the router's external address (invalid when unknown).
	External netip.Addr
	Mappings []Mapping
	// Err is the last failure, nil after a success.
	Err error
}

// backend is one method's way of talking to the router.
type backend interface {
	method() Method
	// mapPort maps m.Protocol/m.Internal, asking for m.External's port when it is set (a
	// renewal), and fills in m.External and m.Lifetime.
	mapPort(ctx context.Context, m *Mapping, lifetime time.Duration) error
	unmap(ctx context.Context, m *Mapping) error
}

// Mapper keeps ports mapped on the router until Close.
type Mapper struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status Status
	active backend // the backend of status.Mappings, read by Close after the loop ended
}

// Start validates cfg and starts mapping in the background; Status and OnChange tell the
// outcome.
func Start(cfg Config) (*Mapper, error) {
	if cfg.TCPPort == 0 && cfg.UDPPort == 0 {
		return nil, errors.New("port mapping: no port to map")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	cfg.Lifetime = max(cfg.Lifetime, 2*time.Minute)
	if len(cfg.Methods) == 0 {
		cfg.Methods = []Method{PCP, NATPMP, UPnP}
	}
	for _, m := range cfg.Methods {
		if m != PCP && m != NATPMP && m != UPnP {
			return nil, fmt.Errorf("port mapping: unknown method %q", m)
		}
	}
	if cfg.Description == "" {
		cfg.Description = "gotfs"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mapper{cfg: cfg, log: log, done: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.run()
	return m, nil
}

// Status returns the current mappings and external address.
func (m *Mapper) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	s.Mappings = slices.Clone(s.Mappings)
	return s
}

// ExternalAddr returns the router's external address, or an invalid address while unknown.
func (m *Mapper) ExternalAddr() netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status.External
}

// Close stops renewing and removes the mappings from the router (waiting at most a few
// seconds for it).
func (m *Mapper) Close() error {
	m.cancel()
	<-m.done
	m.mu.Lock()
	b, maps := m.active, m.status.Mappings
	m.status.Mappings, m.active = nil, nil
	m.mu.Unlock()
	if b == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	for i := range maps {
		if err := b.unmap(ctx, &maps[i]); err != nil {
			errs = append(errs, fmt.Errorf("remove %s mapping of port %d: %w", maps[i].Protocol, maps[i].Internal, err))
		}
	}
	return errors.Join(errs...)
}

// run maps the ports, then renews them at half their lease; when a renewal fails it starts
// again from the first method, and when every method fails it waits (1 min doubling to 30
// min) and tries again.
func (m *Mapper) run() {
	defer close(m.done)
	retry := retryMin
	var b backend
	var maps []Mapping
	for {
		var err error
		if b != nil {
			err = m.renew(b, maps)
		}
		if b == nil || err != nil {
			if err != nil {
				m.log.Info("port mapping renewal failed", "method", b.method(), "err", err)
			}
			b, maps, err = m.mapAll()
		}
		if err != nil {
			m.set(Status{Err: err}, nil)
			m.log.Info("port mapping failed", "err", err, "retry_in", retry)
			if !m.sleep(retry) {
				return
			}
			retry = min(retry*2, retryMax)
			continue
		}
		retry = retryMin
		if !m.sleep(renewAfter(maps)) {
			return
		}
	}
}

// renewAfter is half the shortest lease of maps (at least 30 s; 10 min for permanent ones,
// which are refreshed in case the router restarted).
func renewAfter(maps []Mapping) time.Duration {
	d := 20 * time.Minute
	for _, mp := range maps {
		if mp.Lifetime > 0 {
			d = min(d, mp.Lifetime)
		}
	}
	return max(d/2, 30*time.Second)
}

func (m *Mapper) sleep(d time.Duration) bool {
	select {
	case <-m.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// mapAll tries each method in turn until one maps every port.
func (m *Mapper) mapAll() (backend, []Mapping, error) {
	gw := m.cfg.Gateway
	if !gw.IsValid() {
		var err error
		if gw, err = DefaultGateway(); err != nil {
			return nil, nil, err
		}
	}
	local, err := localAddrTo(gw)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, method := range m.cfg.Methods {
		var b backend
		switch method {
		case PCP:
			b = &pcpBackend{gw: gw, local: local, nonces: map[Protocol][12]byte{}}
		case NATPMP:
			b = &natpmpBackend{gw: gw}
		case UPnP:
			b = &upnpBackend{gw: gw, local: local, desc: m.cfg.Description, http: newHTTPClient(gw)}
		}
		var maps []Mapping
		for _, p := range []struct {
			proto Protocol
			port  uint16
		}{{TCP, m.cfg.TCPPort}, {UDP, m.cfg.UDPPort}} {
			if p.port != 0 {
				maps = append(maps, Mapping{Protocol: p.proto, Internal: p.port})
			}
		}
		ctx, cancel := context.WithTimeout(m.ctx, attemptTimeout)
		err := m.mapEach(ctx, b, maps)
		cancel()
		if err == nil {
			m.set(Status{Method: method, External: maps[0].External.Addr(), Mappings: maps}, b)
			for _, mp := range maps {
				m.log.Info("port mapped", "method", method, "protocol", mp.Protocol, "internal", mp.Internal,
					"external", mp.External, "lease", mp.Lifetime)
			}
			return b, maps, nil
		}
		m.log.Debug("port mapping method failed", "method", method, "gateway", gw, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", method, err))
		if m.ctx.Err() != nil {
			break
		}
	}
	return nil, nil, fmt.Errorf("port mapping through %s: %w", gw, errors.Join(errs...))
}

// mapEach maps every one of maps with b; when one fails, those already made are removed.
func (m *Mapper) mapEach(ctx context.Context, b backend, maps []Mapping) error {
	for i := range maps {
		if err := b.mapPort(ctx, &maps[i], m.cfg.Lifetime); err != nil {
			for j := range i {
				b.unmap(ctx, &maps[j])
			}
			return err
		}
	}
	return nil
}

// renew maps every port again with the same backend, asking for the same external ports.
func (m *Mapper) renew(b backend, maps []Mapping) error {
	ctx, cancel := context.WithTimeout(m.ctx, attemptTimeout)
	defer cancel()
	for i := range maps {
		if err := b.mapPort(ctx, &maps[i], m.cfg.Lifetime); err != nil {
			return err
		}
	}
	m.set(Status{Method: b.method(), External: maps[0].External.Addr(), Mappings: slices.Clone(maps)}, b)
	return nil
}

// set records a new status and calls OnChange when something a caller sees changed.
func (m *Mapper) set(s Status, b backend) {
	m.mu.Lock()
	old := m.status
	changed := old.Method != s.Method || old.External != s.External || !slices.Equal(old.Mappings, s.Mappings) ||
		(old.Err == nil) != (s.Err == nil)
	if s.Err != nil && old.External.IsValid() && m.active != nil {
		// Mappings made earlier may still stand: keep them for Close to remove.
		s.Method, s.External, s.Mappings, b = old.Method, old.External, old.Mappings, m.active
	}
	m.status, m.active = s, b
	m.mu.Unlock()
	if changed && m.cfg.OnChange != nil {
		m.cfg.OnChange(s)
	}
}
