package utp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// packetType is the high nibble of a packet's first byte (BEP 29).
type packetType uint8

const (
	stData  packetType = 0 // a payload
	stFin   packetType = 1 // the sender's last sequence number
	stState packetType = 2 // an acknowledgement, no payload, no sequence number of its own
	stReset packetType = 3 // the connection is gone
	stSyn   packetType = 4 // opens a connection
)

func (t packetType) String() string {
	switch t {
	case stData:
		return "ST_DATA"
	case stFin:
		return "ST_FIN"
	case stState:
		return "ST_STATE"
	case stReset:
		return "ST_RESET"
	case stSyn:
		return "ST_SYN"
	}
	return fmt.Sprintf("ST_%d", uint8(t))
}

const (
	// protocolVersion is the low nibble of the first byte.
	protocolVersion = 1
	// headerLen is the size of the fixed header.
	headerLen = 20
	// extSelectiveAck is the extension type of the selective ACK bitmask.
	extSelectiveAck = 1
	// maxExtensions bounds the extension chain a packet may carry.
	maxExtensions = 8
	// maxSACKBytes is the longest bitmask we send: 256 packets past ack_nr+1.
	maxSACKBytes = 32
)

var (
	errShort     = errors.New("utp: packet shorter than the 20-byte header")
	errVersion   = errors.New("utp: not a version 1 packet")
	errType      = errors.New("utp: unknown packet type")
	errExtension = errors.New("utp: extension runs past the end of the packet")
	errExtCount  = errors.New("utp: too many extensions")
)

// header is a parsed packet header. sack aliases the packet it came from.
type header struct {
	typ    packetType
	connID uint16
	ts     uint32 // timestamp_microseconds: the sender's clock when it sent the packet
	tsDiff uint32 // timestamp_difference_microseconds: the sender's last one-way delay sample
	wnd    uint32 // the sender's free receive buffer, bytes
	seq    uint16
	ack    uint16
	sack   []byte // selective ACK bitmask: bit i of byte j is ack+2+8j+i; nil when absent
}

// isUTP reports whether a datagram looks like uTP version 1, so that a shared UDP socket can
// hand everything else (DHT messages start with 'd', UDP tracker replies with 0) elsewhere.
func isUTP(b []byte) bool {
	return len(b) >= headerLen && b[0]&0x0f == protocolVersion && packetType(b[0]>>4) <= stSyn
}

// parsePacket parses a datagram. It never allocates; the returned payload and the header's
// sack alias b. Unknown extensions are skipped; a chain longer than maxExtensions, or one
// that runs past the end, is an error.
func parsePacket(b []byte) (header, []byte, error) {
	var h header
	if len(b) < headerLen {
		return h, nil, errShort
	}
	if b[0]&0x0f != protocolVersion {
		return h, nil, errVersion
	}
	h.typ = packetType(b[0] >> 4)
	if h.typ > stSyn {
		return h, nil, errType
	}
	next := b[1]
	h.connID = binary.BigEndian.Uint16(b[2:])
	h.ts = binary.BigEndian.Uint32(b[4:])
	h.tsDiff = binary.BigEndian.Uint32(b[8:])
	h.wnd = binary.BigEndian.Uint32(b[12:])
	h.seq = binary.BigEndian.Uint16(b[16:])
	h.ack = binary.BigEndian.Uint16(b[18:])
	rest := b[headerLen:]
	for n := 0; next != 0; n++ {
		if n == maxExtensions {
			return h, nil, errExtCount
		}
		if len(rest) < 2 {
			return h, nil, errExtension
		}
		typ, l := next, int(rest[1])
		next = rest[0]
		if len(rest) < 2+l {
			return h, nil, errExtension
		}
		if typ == extSelectiveAck && l > 0 && h.sack == nil {
			h.sack = rest[2 : 2+l : 2+l]
		}
		rest = rest[2+l:]
	}
	return h, rest, nil
}

// appendHeader appends the header (with the selective ACK extension when h.sack is set,
// padded to a multiple of 4 bytes as BEP 29 asks) to dst.
func appendHeader(dst []byte, h header) []byte {
	ext := byte(0)
	if len(h.sack) > 0 {
		ext = extSelectiveAck
	}
	dst = append(dst, byte(h.typ)<<4|protocolVersion, ext)
	dst = binary.BigEndian.AppendUint16(dst, h.connID)
	dst = binary.BigEndian.AppendUint32(dst, h.ts)
	dst = binary.BigEndian.AppendUint32(dst, h.tsDiff)
	dst = binary.BigEndian.AppendUint32(dst, h.wnd)
	dst = binary.BigEndian.AppendUint16(dst, h.seq)
	dst = binary.BigEndian.AppendUint16(dst, h.ack)
	if ext != 0 {
		l := (len(h.sack) + 3) &^ 3
		dst = append(dst, 0, byte(l))
		dst = append(dst, h.sack...)
		for i := len(h.sack); i < l; i++ {
			dst = append(dst, 0)
		}
	}
	return dst
}

// seqLess reports whether sequence number a comes before b, with wrap-around: the half of
// the 16-bit space ahead of a is "after".
func seqLess(a, b uint16) bool { return int16(a-b) < 0 }

// seqDiff is a-b as a signed distance, with wrap-around.
func seqDiff(a, b uint16) int { return int(int16(a - b)) }
