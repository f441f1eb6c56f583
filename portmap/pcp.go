package portmap

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// PCP (RFC 6887) constants: the version, the MAP opcode, the response bit and the sizes of a
// MAP request and answer (common header plus MAP payload).
const (
	pcpVersion  = 2
	pcpOpMap    = 1
	pcpResponse = 0x80
	pcpMapSize  = 24 + 36
)

var pcpResults = [...]string{"success", "unsupported version", "not authorized", "malformed request",
	"unsupported opcode", "unsupported option", "malformed option", "network failure", "no resources",
	"unsupported protocol", "user exceeded quota", "cannot provide external", "address mismatch",
	"excessive remote peers"}

// errPCPUnsupported is a NAT-PMP answer to a PCP request: the gateway speaks only NAT-PMP
// (RFC 6887 §9).
var errPCPUnsupported = errors.New("pcp: gateway speaks NAT-PMP only")

// pcpMap is a PCP MAP request or answer.
type pcpMap struct {
	lifetime uint32
	client   netip.Addr // request: our address as the gateway sees it
	nonce    [12]byte
	protocol byte // IANA number: 6 TCP, 17 UDP
	internal uint16
	external netip.AddrPort // request: suggestion (zeros: none); answer: assigned
	result   byte           // answer
	epoch    uint32         // answer
}

// encode writes a MAP request.
func (m *pcpMap) encode() []byte {
	b := make([]byte, pcpMapSize)
	b[0], b[1] = pcpVersion, pcpOpMap
	binary.BigEndian.PutUint32(b[4:], m.lifetime)
	a16 := m.client.As16() // IPv4 as ::ffff:a.b.c.d
	copy(b[8:24], a16[:])
	p := b[24:]
	copy(p[:12], m.nonce[:])
	p[12] = m.protocol
	binary.BigEndian.PutUint16(p[16:], m.internal)
	binary.BigEndian.PutUint16(p[18:], m.external.Port())
	ext := netip.IPv6Unspecified().As16()
	if m.external.Addr().IsValid() {
		ext = m.external.Addr().As16()
	} else {
		ext[10], ext[11] = 0xff, 0xff // ::ffff:0.0.0.0, "no IPv4 preference"
	}
	copy(p[20:36], ext[:])
	return b
}

// parsePCPMap parses an answer to a MAP request. Options after the MAP payload are ignored.
func parsePCPMap(b []byte) (pcpMap, error) {
	var m pcpMap
	if len(b) >= 2 && b[0] == 0 {
		return m, errPCPUnsupported
	}
	if len(b) < pcpMapSize || len(b) > 1100 || len(b)%4 != 0 {
		return m, fmt.Errorf("pcp: answer of %d bytes", len(b))
	}
	if b[0] != pcpVersion {
		return m, fmt.Errorf("pcp: answer version %d", b[0])
	}
	if b[1] != pcpResponse|pcpOpMap {
		return m, fmt.Errorf("pcp: answer opcode %#x, want MAP answer", b[1])
	}
	m.result = b[3]
	m.lifetime = binary.BigEndian.Uint32(b[4:])
	m.epoch = binary.BigEndian.Uint32(b[8:])
	p := b[24:]
	copy(m.nonce[:], p[:12])
	m.protocol = p[12]
	m.internal = binary.BigEndian.Uint16(p[16:])
	m.external = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[20:36])).Unmap(), binary.BigEndian.Uint16(p[18:]))
	if m.result != 0 {
		name := "unknown"
		if int(m.result) < len(pcpResults) {
			name = pcpResults[m.result]
		}
		return m, fmt.Errorf("pcp: result %d (%s)", m.result, name)
	}
	return m, nil
}

// pcpBackend maps ports with PCP. Each mapping keeps its nonce, which its renewals and its
// deletion must repeat.
type pcpBackend struct {
	gw, local netip.Addr
	nonces    map[Protocol][12]byte
}

func (p *pcpBackend) method() Method { return PCP }

func (p *pcpBackend) request(ctx context.Context, m *Mapping, lifetime uint32) (pcpMap, error) {
	nonce, ok := p.nonces[m.Protocol]
	if !ok {
		if _, err := rand.Read(nonce[:]); err != nil {
			return pcpMap{}, err
		}
		p.nonces[m.Protocol] = nonce
	}
	req := pcpMap{lifetime: lifetime, client: p.local, nonce: nonce, protocol: 6, internal: m.Internal}
	if m.Protocol == UDP {
		req.protocol = 17
	}
	if lifetime > 0 {
		req.external = netip.AddrPortFrom(netip.Addr{}, m.Internal)
		if m.External.IsValid() {
			req.external = m.External
		}
	}
	var ans pcpMap
	err := exchange(ctx, p.gw, req.encode(), func(b []byte) (bool, error) {
		a, err := parsePCPMap(b)
		if errors.Is(err, errPCPUnsupported) {
			return true, err
		}
		// An answer to another request (another nonce, protocol or port) is not ours.
		if !bytes.Equal(a.nonce[:], nonce[:]) || a.protocol != req.protocol || a.internal != req.internal {
			return false, nil
		}
		ans = a
		return true, err
	})
	return ans, err
}

func (p *pcpBackend) mapPort(ctx context.Context, m *Mapping, lifetime time.Duration) error {
	a, err := p.request(ctx, m, seconds(lifetime))
	if err != nil {
		return err
	}
	if a.lifetime == 0 || a.external.Port() == 0 || !a.external.Addr().Is4() {
		return fmt.Errorf("pcp: mapping answer with no lifetime or no external address (%s)", a.external)
	}
	m.External, m.Lifetime = a.external, time.Duration(a.lifetime)*time.Second
	return nil
}

func (p *pcpBackend) unmap(ctx context.Context, m *Mapping) error {
	_, err := p.request(ctx, m, 0)
	return err
}
