package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// protocolString is the BEP 3 protocol name sent after its length byte.
const protocolString = "BitTorrent protocol"

// HandshakeLen is the length of a BEP 3 handshake.
const HandshakeLen = 1 + len(protocolString) + 8 + 20 + 20

// Handshake is the BEP 3 handshake of one side.
type Handshake struct {
	Reserved         [8]byte
	InfoHash, PeerID [20]byte
}

// Reserved bit positions (byte index, mask).
const (
	extByte, extMask   = 5, 0x10 // BEP 10
	dhtByte, dhtMask   = 7, 0x01 // BEP 5
	fastByte, fastMask = 7, 0x04 // BEP 6
)

// ReservedBits returns handshake reserved bytes announcing the given extensions.
func ReservedBits(extensions, dht, fast bool) [8]byte {
	var r [8]byte
	if extensions {
		r[extByte] |= extMask
	}
	if dht {
		r[dhtByte] |= dhtMask
	}
	if fast {
		r[fastByte] |= fastMask
	}
	return r
}

// SupportsExtensions reports the BEP 10 extension protocol bit.
func (h Handshake) SupportsExtensions() bool { return h.Reserved[extByte]&extMask != 0 }

// SupportsDHT reports the BEP 5 DHT bit.
func (h Handshake) SupportsDHT() bool { return h.Reserved[dhtByte]&dhtMask != 0 }

// SupportsFast reports the BEP 6 fast extension bit.
func (h Handshake) SupportsFast() bool { return h.Reserved[fastByte]&fastMask != 0 }

// AppendHandshake appends the wire encoding of h (68 bytes) to dst.
func AppendHandshake(dst []byte, h Handshake) []byte {
	dst = append(dst, byte(len(protocolString)))
	dst = append(dst, protocolString...)
	dst = append(dst, h.Reserved[:]...)
	dst = append(dst, h.InfoHash[:]...)
	return append(dst, h.PeerID[:]...)
}

// parseHandshakeStart parses the first 48 bytes of a handshake (everything but the peer
// id).
func parseHandshakeStart(b []byte) (Handshake, error) {
	var h Handshake
	if b[0] != byte(len(protocolString)) || string(b[1:20]) != protocolString {
		end := min(int(b[0])+1, 20)
		return h, protoErr("handshake protocol %q, want %q", b[1:end], protocolString)
	}
	copy(h.Reserved[:], b[20:28])
	copy(h.InfoHash[:], b[28:48])
	return h, nil
}

// ParseHandshake parses a complete 68-byte handshake. Errors wrap ErrProtocol.
func ParseHandshake(b []byte) (Handshake, error) {
	if len(b) != HandshakeLen {
		return Handshake{}, protoErr("handshake of %d bytes, want %d", len(b), HandshakeLen)
	}
	h, err := parseHandshakeStart(b)
	if err != nil {
		return h, err
	}
	copy(h.PeerID[:], b[48:])
	return h, nil
}

// Dial connects to addr over TCP and performs the handshake for infoHash. It honours ctx
// (cancellation and deadline) for both the connection and the handshake; the handshake is
// also bounded by HandshakeTimeout. It returns the peer's handshake. An answer with another
// info hash wraps ErrInfoHashMismatch and ErrProtocol; our own peer id wraps
// ErrSelfConnection.
func Dial(ctx context.Context, addr netip.AddrPort, infoHash, peerID [20]byte, opts Options) (*Conn, Handshake, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, Handshake{}, fmt.Errorf("p2p: dial %v: %w", addr, err)
	}
	return Client(ctx, nc, infoHash, peerID, opts)
}

// Client performs the initiating side of the handshake on an established connection nc
// (for transports other than TCP, and tests), as Dial does. It takes ownership of nc: on
// error nc is closed.
func Client(ctx context.Context, nc net.Conn, infoHash, peerID [20]byte, opts Options) (*Conn, Handshake, error) {
	return client(ctx, newConn(nc), infoHash, peerID, opts, false)
}

// client performs the initiating handshake on c; sent tells that our handshake already went
// out (in an MSE handshake's initial payload). On error c is closed.
func client(ctx context.Context, c *Conn, infoHash, peerID [20]byte, opts Options, sent bool) (*Conn, Handshake, error) {
	h, err := c.clientHandshake(ctx, infoHash, peerID, opts, sent)
	if err != nil {
		c.nc.Close()
		return nil, Handshake{}, fmt.Errorf("p2p: handshake with %v: %w", c.remote, err)
	}
	return c, h, nil
}

func (c *Conn) clientHandshake(ctx context.Context, infoHash, peerID [20]byte, opts Options, sent bool) (Handshake, error) {
	deadline := time.Now().Add(HandshakeTimeout)
	ctxDeadline, hasDeadline := ctx.Deadline()
	if hasDeadline && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return Handshake{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	h, err := c.clientExchange(infoHash, peerID, opts, sent)
	if err != nil && hasDeadline && !time.Now().Before(ctxDeadline) {
		// The socket deadline was ctx's and may have fired just before ctx noticed.
		return Handshake{}, fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	if !stop() || ctx.Err() != nil {
		// ctx ended during the handshake: report that rather than the deadline it caused.
		if err == nil {
			err = ctx.Err()
		} else {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return Handshake{}, err
	}
	if err != nil {
		return Handshake{}, err
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return Handshake{}, err
	}
	c.configure(opts, h.SupportsFast() && Handshake{Reserved: opts.Reserved}.SupportsFast())
	return h, nil
}

func (c *Conn) clientExchange(infoHash, peerID [20]byte, opts Options, sent bool) (Handshake, error) {
	ours := Handshake{Reserved: opts.Reserved, InfoHash: infoHash, PeerID: peerID}
	// Straight to the socket: the write buffer would set its own deadline.
	if !sent {
		if _, err := c.nc.Write(AppendHandshake(c.hdr[:0], ours)); err != nil {
			return Handshake{}, err
		}
	}
	b, err := c.readFull(HandshakeLen)
	if err != nil {
		return Handshake{}, err
	}
	h, err := ParseHandshake(b)
	if err != nil {
		return Handshake{}, err
	}
	if h.InfoHash != infoHash {
		return Handshake{}, fmt.Errorf("%w: %w: peer answered %x, want %x", ErrProtocol, ErrInfoHashMismatch, h.InfoHash, infoHash)
	}
	if h.PeerID == peerID {
		return Handshake{}, ErrSelfConnection
	}
	return h, nil
}

// readFull reads exactly n bytes (n <= the read buffer size) from the read buffer; the
// result is valid until the next read.
func (c *Conn) readFull(n int) ([]byte, error) {
	b, err := c.br.Peek(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			if len(b) == 0 {
				return nil, protoErr("connection closed before the handshake: %w", io.EOF)
			}
			return nil, protoErr("truncated handshake (%d of %d bytes): %w", len(b), n, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	_, _ = c.br.Discard(n)
	return b, nil
}

// Accept performs the handshake on an incoming connection: it reads the peer's handshake
// up to the info hash, calls lookup(infoHash) for that torrent's options (false refuses it:
// ErrUnknownTorrent), replies with our handshake, then reads the peer id. The handshake is
// bounded by HandshakeTimeout. Accept takes ownership of nc: on error nc is closed.
func Accept(nc net.Conn, peerID [20]byte, lookup func(infoHash [20]byte) (Options, bool)) (*Conn, Handshake, error) {
	return accept(newConn(nc), peerID, lookup)
}

// accept performs the receiving handshake on c; on error c is closed.
func accept(c *Conn, peerID [20]byte, lookup func(infoHash [20]byte) (Options, bool)) (*Conn, Handshake, error) {
	h, err := c.serverHandshake(peerID, lookup)
	if err != nil {
		c.nc.Close()
		return nil, Handshake{}, fmt.Errorf("p2p: handshake from %v: %w", c.remote, err)
	}
	return c, h, nil
}

func (c *Conn) serverHandshake(peerID [20]byte, lookup func(infoHash [20]byte) (Options, bool)) (Handshake, error) {
	if err := c.nc.SetDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return Handshake{}, err
	}
	b, err := c.readFull(HandshakeLen - 20)
	if err != nil {
		return Handshake{}, err
	}
	h, err := parseHandshakeStart(b)
	if err != nil {
		return Handshake{}, err
	}
	opts, ok := lookup(h.InfoHash)
	if !ok {
		return Handshake{}, fmt.Errorf("%w %x", ErrUnknownTorrent, h.InfoHash)
	}
	ours := Handshake{Reserved: opts.Reserved, InfoHash: h.InfoHash, PeerID: peerID}
	// Straight to the socket: the write buffer would set its own deadline.
	if _, err := c.nc.Write(AppendHandshake(c.hdr[:0], ours)); err != nil {
		return Handshake{}, err
	}
	b, err = c.readFull(20)
	if err != nil {
		return Handshake{}, err
	}
	copy(h.PeerID[:], b)
	if bytes.Equal(h.PeerID[:], peerID[:]) {
		return Handshake{}, ErrSelfConnection
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return Handshake{}, err
	}
	c.configure(opts, h.SupportsFast() && ours.SupportsFast())
	return h, nil
}
