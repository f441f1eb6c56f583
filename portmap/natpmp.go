package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// NAT-PMP (RFC 6886) and PCP (RFC 6887) both talk to the gateway on UDP port 5351.
const natpmpPort = 5351

// NAT-PMP opcodes and the result code that means success.
const (
	natpmpOpAddress = 0
	natpmpOpMapUDP  = 1
	natpmpOpMapTCP  = 2
	natpmpResultOK  = 0
)

// natpmpResult names the result codes of RFC 6886 §3.5.
var natpmpResults = [...]string{"success", "unsupported version", "not authorized or refused",
	"network failure", "out of resources", "unsupported opcode"}

// natpmpResponse is a parsed NAT-PMP answer (RFC 6886 §3.2 and §3.3).
type natpmpResponse struct {
	op       byte // the request's opcode (the answer's is op+128)
	result   uint16
	epoch    uint32
	external netip.Addr // opcode 0
	internal uint16     // mapping opcodes
	mapped   uint16
	lifetime uint32
}

// parseNATPMP parses a NAT-PMP answer to a request with opcode op.
func parseNATPMP(b []byte, op byte) (natpmpResponse, error) {
	var r natpmpResponse
	if len(b) < 8 {
		return r, fmt.Errorf("nat-pmp: answer of %d bytes", len(b))
	}
	if b[0] != 0 {
		return r, fmt.Errorf("nat-pmp: answer version %d", b[0])
	}
	if b[1] != op+128 {
		return r, fmt.Errorf("nat-pmp: answer opcode %d to request %d", b[1], op)
	}
	r.op, r.result, r.epoch = op, binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:])
	if r.result != natpmpResultOK {
		name := "unknown"
		if int(r.result) < len(natpmpResults) {
			name = natpmpResults[r.result]
		}
		return r, fmt.Errorf("nat-pmp: result %d (%s)", r.result, name)
	}
	switch op {
	case natpmpOpAddress:
		if len(b) < 12 {
			return r, fmt.Errorf("nat-pmp: address answer of %d bytes", len(b))
		}
		r.external = netip.AddrFrom4([4]byte(b[8:12]))
	default:
		if len(b) < 16 {
			return r, fmt.Errorf("nat-pmp: mapping answer of %d bytes", len(b))
		}
		r.internal, r.mapped = binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:])
		r.lifetime = binary.BigEndian.Uint32(b[12:])
	}
	return r, nil
}

// natpmpMapRequest encodes a mapping request (lifetime 0 with external 0 deletes).
func natpmpMapRequest(p Protocol, internal, external uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[1] = natpmpOpMapTCP
	if p == UDP {
		b[1] = natpmpOpMapUDP
	}
	binary.BigEndian.PutUint16(b[4:], internal)
	binary.BigEndian.PutUint16(b[6:], external)
	binary.BigEndian.PutUint32(b[8:], lifetime)
	return b
}

// natpmpBackend maps ports with NAT-PMP.
type natpmpBackend struct {
	gw netip.Addr
}

func (n *natpmpBackend) method() Method { return NATPMP }

func (n *natpmpBackend) externalAddr(ctx context.Context) (netip.Addr, error) {
	var r natpmpResponse
	err := exchange(ctx, n.gw, []byte{0, natpmpOpAddress}, func(b []byte) (bool, error) {
		var err error
		r, err = parseNATPMP(b, natpmpOpAddress)
		return true, err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	return r.external, nil
}

func (n *natpmpBackend) mapPort(ctx context.Context, m *Mapping, lifetime time.Duration) error {
	op := byte(natpmpOpMapTCP)
	if m.Protocol == UDP {
		op = natpmpOpMapUDP
	}
	suggest := m.External.Port()
	if suggest == 0 {
		suggest = m.Internal
	}
	var r natpmpResponse
	err := exchange(ctx, n.gw, natpmpMapRequest(m.Protocol, m.Internal, suggest, seconds(lifetime)), func(b []byte) (bool, error) {
		var err error
		r, err = parseNATPMP(b, op)
		return err != nil || r.internal == m.Internal, err
	})
	if err != nil {
		return err
	}
	if r.mapped == 0 || r.lifetime == 0 {
		return errors.New("nat-pmp: mapping answer with no port or no lifetime")
	}
	ext, err := n.externalAddr(ctx)
	if err != nil {
		return err
	}
	m.External = netip.AddrPortFrom(ext, r.mapped)
	m.Lifetime = time.Duration(r.lifetime) * time.Second
	return nil
}

func (n *natpmpBackend) unmap(ctx context.Context, m *Mapping) error {
	op := byte(natpmpOpMapTCP)
	if m.Protocol == UDP {
		op = natpmpOpMapUDP
	}
	return exchange(ctx, n.gw, natpmpMapRequest(m.Protocol, m.Internal, 0, 0), func(b []byte) (bool, error) {
		r, err := parseNATPMP(b, op)
		return err != nil || r.internal == m.Internal, err
	})
}

// exchange sends req to the gateway's port 5351 and hands each answer to accept until it
// says done, retransmitting after 250 ms, then 500 ms, 1 s and 2 s (RFC 6886 §3.1 starts the
// same way, then goes on for a minute; a gateway silent for four seconds is taken to have no
// NAT-PMP or PCP).
func exchange(ctx context.Context, gw netip.Addr, req []byte, accept func([]byte) (done bool, err error)) error {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, natpmpPort)))
	if err != nil {
		return fmt.Errorf("%s:%d: %w", gw, natpmpPort, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1100) // PCP's largest message
	wait := 250 * time.Millisecond
	for try := 0; try < 4; try++ {
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("%s:%d: %w", gw, natpmpPort, err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := c.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				// An ICMP port unreachable: nobody listens there.
				return fmt.Errorf("%s:%d: %w", gw, natpmpPort, err)
			}
			if done, err := accept(buf[:n]); done {
				return err
			}
		}
		wait *= 2
	}
	return fmt.Errorf("%s:%d: %w", gw, natpmpPort, errNoAnswer)
}

var errNoAnswer = errors.New("no answer")

// seconds converts a lifetime to whole seconds, at least 1.
func seconds(d time.Duration) uint32 {
	return uint32(max(1, min(d/time.Second, 1<<32-1)))
}
