// Package p2p speaks the BitTorrent peer wire protocol: the handshake and reserved bits
// (BEP 3, BEP 4), every BEP 3 message, the BEP 10 extension framing and handshake, and the
// message ids of the fast extension (BEP 6).
//
// It holds mechanism only: a [Conn] frames, validates and buffers messages; which messages to
// send, and when, is the engine's business (package fetch). Every length prefix is checked
// against the message type before anything is allocated, every read and write carries a
// deadline, and receiving a block allocates nothing in steady state.
//
// Errors caused by the remote peer breaking the protocol wrap [ErrProtocol]; errors of the
// connection itself (timeouts, resets, EOF) wrap the underlying net or io error instead.
package p2p

import (
	"errors"
	"fmt"
	"time"
)

// BlockSize is the size of a block request: 16 KiB, the largest that peers must serve.
const BlockSize = 16 * 1024

// Limits on what a peer may send.
const (
	// MaxExtendedPayload bounds the payload of one BEP 10 extended message.
	MaxExtendedPayload = 1 << 20
	// MaxUnknownMessage bounds the body of a message with an id we do not know; such
	// messages are skipped (BEP 3 says to ignore them).
	MaxUnknownMessage = 1 << 20
	// MaxBitfieldUnknown bounds a bitfield received while the number of pieces is not yet
	// known (magnet links): 1 MiB, that is 8 Mi pieces.
	MaxBitfieldUnknown = 1 << 20
	// HandshakeTimeout bounds a handshake when the context (Dial) carries no earlier
	// deadline, and always bounds Accept.
	HandshakeTimeout = 20 * time.Second
	// DefaultReadTimeout is used when Options.ReadTimeout is zero.
	DefaultReadTimeout = 2 * time.Minute
	// DefaultWriteTimeout is used when Options.WriteTimeout is zero.
	DefaultWriteTimeout = 30 * time.Second
)

const (
	readBufferSize  = 128 * 1024
	writeBufferSize = 64 * 1024
	// minWriteBuffer and maxWriteBuffer bound the write buffer a connection's writeSizer
	// asks for.
	minWriteBuffer = 4 * 1024
	maxWriteBuffer = 256 * 1024
)

// ErrProtocol is wrapped by every error caused by a peer breaking the wire protocol: a bad
// handshake, a malformed or oversized message, an index out of range.
var ErrProtocol = errors.New("peer protocol violation")

// ErrInfoHashMismatch is wrapped (together with ErrProtocol) when the peer answers a
// handshake with another torrent's info hash.
var ErrInfoHashMismatch = errors.New("info hash mismatch")

// ErrSelfConnection is returned when the remote peer id equals our own: we dialed ourselves.
// The engine should forget that address.
var ErrSelfConnection = errors.New("connected to ourselves")

// ErrUnknownTorrent is returned by Accept when lookup refuses the info hash.
var ErrUnknownTorrent = errors.New("unknown info hash")

// protoErr returns an error wrapping ErrProtocol with detail.
func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
