package p2p

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ut_holepunch (BEP 55): a peer that cannot reach another one directly asks a peer connected
// to both (the relay) to tell both sides to open a uTP connection to each other at once.
//
// Payload: msg_type (1 byte), addr_type (1 byte: 0 IPv4, 1 IPv6), address (4 or 16 bytes),
// port (2 bytes), err_code (4 bytes, 0 except in error messages); big-endian throughout.

// ExtHolepunchName is the name of the holepunch extension in the BEP 10 "m" dictionary.
const ExtHolepunchName = "ut_holepunch"

// HolepunchType is the msg_type of a ut_holepunch message.
type HolepunchType uint8

// The ut_holepunch message types.
const (
	// HolepunchRendezvous asks the relay to send connect messages to us and to the target.
	HolepunchRendezvous HolepunchType = 0
	// HolepunchConnect tells its receiver to open a uTP connection to the address now.
	HolepunchConnect HolepunchType = 1
	// HolepunchError tells the initiator that the relay cannot do the rendezvous.
	HolepunchError HolepunchType = 2
)

// HolepunchErr is the err_code of a ut_holepunch error message.
type HolepunchErr uint32

// The BEP 55 error codes.
const (
	HolepunchNoSuchPeer   HolepunchErr = 1 // the target endpoint is invalid
	HolepunchNotConnected HolepunchErr = 2 // the relay is not connected to the target
	HolepunchNoSupport    HolepunchErr = 3 // the target does not support ut_holepunch
	HolepunchNoSelf       HolepunchErr = 4 // the target is the relay itself
)

// String names the error code as BEP 55 does.
func (e HolepunchErr) String() string {
	switch e {
	case 0:
		return "none"
	case HolepunchNoSuchPeer:
		return "NoSuchPeer"
	case HolepunchNotConnected:
		return "NotConnected"
	case HolepunchNoSupport:
		return "NoSupport"
	case HolepunchNoSelf:
		return "NoSelf"
	}
	return fmt.Sprintf("error %d", uint32(e))
}

// HolepunchMsg is one ut_holepunch message.
type HolepunchMsg struct {
	Type HolepunchType
	// Addr is the target (rendezvous, error) or the peer to connect to (connect); IPv4
	// addresses are never IPv4-mapped IPv6 ones.
	Addr netip.AddrPort
	// Err is the error code of an error message; 0 in the others.
	Err HolepunchErr
}

const (
	holepunchLen4 = 1 + 1 + 4 + 2 + 4
	holepunchLen6 = 1 + 1 + 16 + 2 + 4
)

// Encode returns the message's payload. An unknown type, an invalid address, or an error
// code in a message that is not an error is an error.
func (m HolepunchMsg) Encode() ([]byte, error) {
	if m.Type > HolepunchError {
		return nil, fmt.Errorf("p2p: encode ut_holepunch: unknown message type %d", m.Type)
	}
	if !m.Addr.IsValid() {
		return nil, fmt.Errorf("p2p: encode ut_holepunch: invalid address")
	}
	if m.Type != HolepunchError && m.Err != 0 {
		return nil, fmt.Errorf("p2p: encode ut_holepunch: error code %d in a message of type %d", m.Err, m.Type)
	}
	ip := m.Addr.Addr().Unmap().WithZone("")
	b := make([]byte, 0, holepunchLen6)
	if ip.Is4() {
		a := ip.As4()
		b = append(append(b, byte(m.Type), 0), a[:]...)
	} else {
		a := ip.As16()
		b = append(append(b, byte(m.Type), 1), a[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, m.Addr.Port())
	return binary.BigEndian.AppendUint32(b, uint32(m.Err)), nil
}

// ParseHolepunchMsg parses a ut_holepunch payload: exactly 12 (IPv4) or 24 (IPv6) bytes, a
// known message type and address type. The error code of a message that is not an error is
// ignored (it should be 0); an IPv4-mapped IPv6 address is unmapped. A zero port or an
// unspecified address is not an error here (the relay answers NoSuchPeer).
// Errors wrap ErrProtocol. ParseHolepunchMsg never panics.
func ParseHolepunchMsg(b []byte) (HolepunchMsg, error) {
	m, err := parseHolepunchMsg(b)
	if err != nil {
		return HolepunchMsg{}, fmt.Errorf("p2p: parse ut_holepunch: %w", err)
	}
	return m, nil
}

func parseHolepunchMsg(b []byte) (HolepunchMsg, error) {
	var m HolepunchMsg
	if len(b) < 2 {
		return m, protoErr("%d bytes, want 12 or 24", len(b))
	}
	m.Type = HolepunchType(b[0])
	if m.Type > HolepunchError {
		return m, protoErr("unknown message type %d", b[0])
	}
	var ip netip.Addr
	switch b[1] {
	case 0:
		if len(b) != holepunchLen4 {
			return m, protoErr("IPv4 message of %d bytes, want %d", len(b), holepunchLen4)
		}
		ip = netip.AddrFrom4([4]byte(b[2:6]))
	case 1:
		if len(b) != holepunchLen6 {
			return m, protoErr("IPv6 message of %d bytes, want %d", len(b), holepunchLen6)
		}
		ip = netip.AddrFrom16([16]byte(b[2:18])).Unmap()
	default:
		return m, protoErr("unknown address type %d", b[1])
	}
	rest := b[len(b)-6:]
	m.Addr = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(rest))
	if m.Type == HolepunchError {
		m.Err = HolepunchErr(binary.BigEndian.Uint32(rest[2:]))
	}
	return m, nil
}
