package p2p

import (
	"encoding/binary"
	"fmt"
)

// MessageID is the type byte of a peer wire message.
type MessageID uint8

// Message ids of BEP 3, BEP 5 (port), BEP 6 (fast extension) and BEP 10 (extended).
const (
	MsgChoke         MessageID = 0
	MsgUnchoke       MessageID = 1
	MsgInterested    MessageID = 2
	MsgNotInterested MessageID = 3
	MsgHave          MessageID = 4
	MsgBitfield      MessageID = 5
	MsgRequest       MessageID = 6
	MsgPiece         MessageID = 7
	MsgCancel        MessageID = 8
	MsgPort          MessageID = 9
	// BEP 6 fast extension. ReadMessage accepts these only when both handshakes set the
	// fast bit; otherwise receiving one is a protocol violation (BEP 6).
	MsgSuggestPiece  MessageID = 13
	MsgHaveAll       MessageID = 14
	MsgHaveNone      MessageID = 15
	MsgRejectRequest MessageID = 16
	MsgAllowedFast   MessageID = 17
	// MsgExtended carries a BEP 10 extension message.
	MsgExtended MessageID = 20
)

var msgNames = [...]string{
	MsgChoke: "choke", MsgUnchoke: "unchoke", MsgInterested: "interested",
	MsgNotInterested: "not interested", MsgHave: "have", MsgBitfield: "bitfield",
	MsgRequest: "request", MsgPiece: "piece", MsgCancel: "cancel", MsgPort: "port",
	MsgSuggestPiece: "suggest piece", MsgHaveAll: "have all", MsgHaveNone: "have none",
	MsgRejectRequest: "reject request", MsgAllowedFast: "allowed fast", MsgExtended: "extended",
}

// String returns the message name, or "message N" for an unknown id.
func (id MessageID) String() string {
	if int(id) < len(msgNames) && msgNames[id] != "" {
		return msgNames[id]
	}
	return fmt.Sprintf("message %d", uint8(id))
}

// Message is one decoded message. KeepAlive is true for a zero-length message (and then
// the other fields are zero).
type Message struct {
	KeepAlive bool
	ID        MessageID
	// Index is set for have, request, cancel, piece, suggest piece, reject request and
	// allowed fast; Begin and Length for request, cancel and reject request; Begin for
	// piece (whose length is len(Payload)).
	Index, Begin, Length uint32
	// Port is set for port messages.
	Port uint16
	// ExtendedID is the BEP 10 extended message id (0 = extension handshake).
	ExtendedID uint8
	// Payload holds the bitfield bytes, a piece's block data, an extended message's
	// payload, or the body of a message with an id without a fixed layout (when writing).
	// A received Payload aliases a buffer of the Conn valid until the next ReadMessage.
	Payload []byte
}

// String describes m briefly, for logs and test failures.
func (m Message) String() string {
	if m.KeepAlive {
		return "keep-alive"
	}
	switch m.ID {
	case MsgHave, MsgSuggestPiece, MsgAllowedFast:
		return fmt.Sprintf("%v %d", m.ID, m.Index)
	case MsgRequest, MsgCancel, MsgRejectRequest:
		return fmt.Sprintf("%v %d/%d+%d", m.ID, m.Index, m.Begin, m.Length)
	case MsgPiece:
		return fmt.Sprintf("%v %d/%d+%d", m.ID, m.Index, m.Begin, len(m.Payload))
	case MsgPort:
		return fmt.Sprintf("%v %d", m.ID, m.Port)
	case MsgExtended:
		return fmt.Sprintf("%v %d (%d bytes)", m.ID, m.ExtendedID, len(m.Payload))
	case MsgBitfield:
		return fmt.Sprintf("%v (%d bytes)", m.ID, len(m.Payload))
	}
	if len(m.Payload) > 0 {
		return fmt.Sprintf("%v (%d bytes)", m.ID, len(m.Payload))
	}
	return m.ID.String()
}

// KeepAlive returns a keep-alive message.
func KeepAlive() Message { return Message{KeepAlive: true} }

// Choke returns a choke message.
func Choke() Message { return Message{ID: MsgChoke} }

// Unchoke returns an unchoke message.
func Unchoke() Message { return Message{ID: MsgUnchoke} }

// Interested returns an interested message.
func Interested() Message { return Message{ID: MsgInterested} }

// NotInterested returns a not-interested message.
func NotInterested() Message { return Message{ID: MsgNotInterested} }

// Have returns a have message for piece index.
func Have(index uint32) Message { return Message{ID: MsgHave, Index: index} }

// BitfieldMsg returns a bitfield message; bf is not copied.
func BitfieldMsg(bf Bitfield) Message { return Message{ID: MsgBitfield, Payload: bf} }

// Request returns a request for length bytes at begin in piece index.
func Request(index, begin, length uint32) Message {
	return Message{ID: MsgRequest, Index: index, Begin: begin, Length: length}
}

// Cancel returns a cancel for a request made earlier.
func Cancel(index, begin, length uint32) Message {
	return Message{ID: MsgCancel, Index: index, Begin: begin, Length: length}
}

// Piece returns a piece message carrying block data at begin in piece index; data is not
// copied.
func Piece(index, begin uint32, data []byte) Message {
	return Message{ID: MsgPiece, Index: index, Begin: begin, Payload: data}
}

// Port returns a port message (BEP 5) announcing our DHT port.
func Port(port uint16) Message { return Message{ID: MsgPort, Port: port} }

// Extended returns a BEP 10 extended message; payload is not copied.
func Extended(extID uint8, payload []byte) Message {
	return Message{ID: MsgExtended, ExtendedID: extID, Payload: payload}
}

// SuggestPiece returns a BEP 6 suggest piece message.
func SuggestPiece(index uint32) Message { return Message{ID: MsgSuggestPiece, Index: index} }

// HaveAll returns a BEP 6 have all message.
func HaveAll() Message { return Message{ID: MsgHaveAll} }

// HaveNone returns a BEP 6 have none message.
func HaveNone() Message { return Message{ID: MsgHaveNone} }

// RejectRequest returns a BEP 6 reject request message.
func RejectRequest(index, begin, length uint32) Message {
	return Message{ID: MsgRejectRequest, Index: index, Begin: begin, Length: length}
}

// AllowedFast returns a BEP 6 allowed fast message.
func AllowedFast(index uint32) Message { return Message{ID: MsgAllowedFast, Index: index} }

// appendHeader appends the length prefix and the fixed part of m to dst and returns it
// with the number of payload bytes that must follow (m.Payload, or none).
func appendHeader(dst []byte, m Message) ([]byte, []byte, error) {
	if m.KeepAlive {
		return binary.BigEndian.AppendUint32(dst, 0), nil, nil
	}
	be := binary.BigEndian
	switch m.ID {
	case MsgChoke, MsgUnchoke, MsgInterested, MsgNotInterested, MsgHaveAll, MsgHaveNone:
		dst = be.AppendUint32(dst, 1)
		return append(dst, byte(m.ID)), nil, nil
	case MsgHave, MsgSuggestPiece, MsgAllowedFast:
		dst = be.AppendUint32(dst, 5)
		dst = append(dst, byte(m.ID))
		return be.AppendUint32(dst, m.Index), nil, nil
	case MsgRequest, MsgCancel, MsgRejectRequest:
		dst = be.AppendUint32(dst, 13)
		dst = append(dst, byte(m.ID))
		dst = be.AppendUint32(dst, m.Index)
		dst = be.AppendUint32(dst, m.Begin)
		return be.AppendUint32(dst, m.Length), nil, nil
	case MsgPort:
		dst = be.AppendUint32(dst, 3)
		dst = append(dst, byte(m.ID))
		return be.AppendUint16(dst, m.Port), nil, nil
	}
	var fixed uint64 = 1
	switch m.ID {
	case MsgPiece:
		fixed = 9
	case MsgExtended:
		fixed = 2
	}
	n := fixed + uint64(len(m.Payload))
	if n > 1<<32-1 {
		return dst, nil, fmt.Errorf("p2p: %v message of %d bytes is too long to frame", m.ID, n)
	}
	dst = be.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(m.ID))
	switch m.ID {
	case MsgPiece:
		dst = be.AppendUint32(dst, m.Index)
		dst = be.AppendUint32(dst, m.Begin)
	case MsgExtended:
		dst = append(dst, m.ExtendedID)
	}
	return dst, m.Payload, nil
}

// AppendMessage appends the wire encoding of m (length prefix included) to dst.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	dst, payload, err := appendHeader(dst, m)
	if err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}

// limits is what the decoder checks a message against.
type limits struct {
	numPieces int                 // 0 = unknown
	pieceSize func(uint32) uint32 // nil = unknown; consulted only when numPieces > 0
	fast      bool                // BEP 6 negotiated by both sides
}

// kind classifies a message id for framing: its exact body length (id byte excluded), or a
// variable one bounded by max.
const (
	varBitfield = -1 - iota
	varPiece
	varExtended
	varUnknown
	varForbidden
)

// bodyLen returns the exact body length for fixed-size messages, or one of the var* values.
func bodyLen(id MessageID, fast bool) int {
	switch id {
	case MsgChoke, MsgUnchoke, MsgInterested, MsgNotInterested:
		return 0
	case MsgHave:
		return 4
	case MsgRequest, MsgCancel:
		return 12
	case MsgPort:
		return 2
	case MsgBitfield:
		return varBitfield
	case MsgPiece:
		return varPiece
	case MsgExtended:
		return varExtended
	case MsgSuggestPiece, MsgAllowedFast, MsgHaveAll, MsgHaveNone, MsgRejectRequest:
		if !fast {
			return varForbidden
		}
		switch id {
		case MsgHaveAll, MsgHaveNone:
			return 0
		case MsgRejectRequest:
			return 12
		}
		return 4
	}
	return varUnknown
}

// checkFrame checks the body length n (id byte excluded) of a message with the given id
// before anything is read or allocated. skip reports a message to be ignored.
func checkFrame(id MessageID, n uint32, lim *limits) (skip bool, err error) {
	want := bodyLen(id, lim.fast)
	switch want {
	case varBitfield:
		if lim.numPieces > 0 {
			if exp := (lim.numPieces + 7) / 8; uint64(n) != uint64(exp) {
				return false, protoErr("bitfield of %d bytes, want %d for %d pieces", n, exp, lim.numPieces)
			}
		} else if n > MaxBitfieldUnknown {
			return false, protoErr("bitfield of %d bytes exceeds %d", n, MaxBitfieldUnknown)
		}
	case varPiece:
		if n <= 8 || n > 8+BlockSize {
			return false, protoErr("piece message body of %d bytes, want 9..%d", n, 8+BlockSize)
		}
	case varExtended:
		if n < 1 || n > 1+MaxExtendedPayload {
			return false, protoErr("extended message body of %d bytes, want 1..%d", n, 1+MaxExtendedPayload)
		}
	case varUnknown:
		if n > MaxUnknownMessage {
			return false, protoErr("unknown %v of %d bytes exceeds %d", id, n, MaxUnknownMessage)
		}
		return true, nil
	case varForbidden:
		return false, protoErr("%v without the fast extension negotiated", id)
	default:
		if uint64(n) != uint64(want) {
			return false, protoErr("%v message body of %d bytes, want %d", id, n, want)
		}
	}
	return false, nil
}

// decodeBody fills m from the body of a message whose frame passed checkFrame.
func decodeBody(m *Message, body []byte, lim *limits) error {
	be := binary.BigEndian
	switch m.ID {
	case MsgHave, MsgSuggestPiece, MsgAllowedFast:
		m.Index = be.Uint32(body)
		return checkIndex(m.ID, m.Index, lim)
	case MsgRequest, MsgCancel, MsgRejectRequest:
		m.Index, m.Begin, m.Length = be.Uint32(body), be.Uint32(body[4:]), be.Uint32(body[8:])
		if m.Length == 0 || m.Length > BlockSize {
			return protoErr("%v of %d bytes, want 1..%d", m.ID, m.Length, BlockSize)
		}
		return checkSpan(m.ID, m.Index, m.Begin, m.Length, lim)
	case MsgPiece:
		m.Index, m.Begin = be.Uint32(body), be.Uint32(body[4:])
		m.Payload = body[8:]
		return checkSpan(m.ID, m.Index, m.Begin, uint32(len(m.Payload)), lim)
	case MsgPort:
		m.Port = be.Uint16(body)
	case MsgBitfield:
		m.Payload = body
		if lim.numPieces > 0 {
			if err := ValidateBitfield(body, lim.numPieces); err != nil {
				return err
			}
		}
	case MsgExtended:
		m.ExtendedID = body[0]
		m.Payload = body[1:]
	}
	return nil
}

func checkIndex(id MessageID, index uint32, lim *limits) error {
	if lim.numPieces > 0 && uint64(index) >= uint64(lim.numPieces) {
		return protoErr("%v index %d out of range (%d pieces)", id, index, lim.numPieces)
	}
	return nil
}

func checkSpan(id MessageID, index, begin, length uint32, lim *limits) error {
	if err := checkIndex(id, index, lim); err != nil {
		return err
	}
	if lim.numPieces > 0 && lim.pieceSize != nil {
		if size := lim.pieceSize(index); uint64(begin)+uint64(length) > uint64(size) {
			return protoErr("%v %d/%d+%d past the end of the piece (%d bytes)", id, index, begin, length, size)
		}
	}
	return nil
}
