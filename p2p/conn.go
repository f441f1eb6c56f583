package p2p

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotfs/gotfs/p2p/mse"
)

// Options configures a Conn for one torrent.
type Options struct {
	// NumPieces is the number of pieces, for bitfield, have and index validation;
	// 0 = not known yet (magnet link), see Conn.SetNumPieces.
	NumPieces int
	// PieceSize returns the length of a piece, for request and piece bounds validation;
	// nil skips that check. It is consulted only for indexes below NumPieces.
	PieceSize func(index uint32) uint32
	// ReadTimeout drops a peer that leaves us waiting this long for one message
	// (keep-alives count). 0 means DefaultReadTimeout (2 min).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the socket. 0 means DefaultWriteTimeout (30 s).
	WriteTimeout time.Duration
	// Reserved holds our reserved handshake bits; set only what the engine implements
	// (see ReservedBits).
	Reserved [8]byte
}

// Conn is one peer connection after the handshake. One goroutine may read (ReadMessage)
// while others write (WriteMessage, Flush: these are serialized by a mutex); Close, SetNumPieces
// and SetPieceSize may be called from any goroutine.
type Conn struct {
	nc     net.Conn
	remote netip.AddrPort
	fast   bool        // BEP 6 negotiated by both sides
	mse    mse.Methods // the MSE method in use, 0 without MSE

	// read side, owned by the reading goroutine
	dr  deadlineReader
	br  *bufio.Reader
	buf []byte // payloads larger than br's buffer

	numPieces atomic.Int64
	pieceSize atomic.Pointer[func(uint32) uint32]

	// write side
	wmu sync.Mutex
	dw  deadlineWriter
	bw  *bufio.Writer
	hdr [32]byte
}

// deadlineReader sets the read deadline before the first socket read of each message, so
// that each message gets ReadTimeout to arrive, and messages already buffered cost no
// system call.
type deadlineReader struct {
	nc      net.Conn
	timeout time.Duration
	armed   bool
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if !d.armed {
		if err := d.nc.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
			return 0, err
		}
		d.armed = true
	}
	return d.nc.Read(p)
}

// deadlineWriter sets the write deadline before each socket write (one per flush of the
// write buffer).
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if err := d.nc.SetWriteDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	return d.nc.Write(p)
}

// writeSizer is a connection whose writes are cheapest at a given size: uTP's, where a write
// of WriteSize bytes fills whole packets and one offloaded send. 0 means no preference.
type writeSizer interface{ WriteSize() int }

// preferredWriteSize is nc's WriteSize, or 0.
func preferredWriteSize(nc net.Conn) int {
	if ws, ok := nc.(writeSizer); ok {
		return ws.WriteSize()
	}
	return 0
}

// writeBufferFor is the size of the write buffer for nc: what it prefers, within bounds, or
// writeBufferSize.
func writeBufferFor(nc net.Conn) int {
	if n := preferredWriteSize(nc); n >= minWriteBuffer && n <= maxWriteBuffer {
		return n
	}
	return writeBufferSize
}

// newConn wraps nc; the handshake has not been done yet.
func newConn(nc net.Conn) *Conn {
	c := &Conn{nc: nc}
	c.dr = deadlineReader{nc: nc, timeout: DefaultReadTimeout, armed: true}
	c.dw = deadlineWriter{nc: nc, timeout: DefaultWriteTimeout}
	c.br = bufio.NewReaderSize(&c.dr, readBufferSize)
	c.bw = bufio.NewWriterSize(&c.dw, writeBufferFor(nc))
	c.remote = addrPortOf(nc.RemoteAddr())
	return c
}

// configure applies opts after the handshake.
func (c *Conn) configure(opts Options, fast bool) {
	c.dr.timeout = opts.ReadTimeout
	if c.dr.timeout <= 0 {
		c.dr.timeout = DefaultReadTimeout
	}
	c.dw.timeout = opts.WriteTimeout
	if c.dw.timeout <= 0 {
		c.dw.timeout = DefaultWriteTimeout
	}
	c.dr.armed = false
	c.fast = fast
	c.SetNumPieces(opts.NumPieces)
	c.SetPieceSize(opts.PieceSize)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// SetNumPieces sets the number of pieces once known (after a magnet link's metadata
// arrives); messages read afterwards are validated against it.
func (c *Conn) SetNumPieces(n int) {
	if n < 0 {
		n = 0
	}
	c.numPieces.Store(int64(n))
}

// SetPieceSize sets the piece length function used to validate requests and pieces.
func (c *Conn) SetPieceSize(f func(index uint32) uint32) {
	if f == nil {
		c.pieceSize.Store(nil)
		return
	}
	c.pieceSize.Store(&f)
}

// FastEnabled reports whether both sides announced the BEP 6 fast extension, so that its
// messages may be sent and are accepted.
func (c *Conn) FastEnabled() bool { return c.fast }

// Encryption returns the MSE method the connection uses (mse.RC4, or mse.Plaintext after an
// MSE handshake that selected it), or 0 when it began with a plain BEP 3 handshake.
func (c *Conn) Encryption() mse.Methods { return c.mse }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// NetConn returns the underlying connection (for statistics; do not read or write it).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection; a blocked ReadMessage or WriteMessage returns an error.
// Buffered writes are not flushed.
func (c *Conn) Close() error { return c.nc.Close() }

func (c *Conn) limits() limits {
	lim := limits{numPieces: int(c.numPieces.Load()), fast: c.fast}
	if f := c.pieceSize.Load(); f != nil {
		lim.pieceSize = *f
	}
	return lim
}

// ReadMessage reads the next message. Messages with unknown ids are skipped. The returned
// Payload aliases an internal buffer, valid only until the next ReadMessage call.
//
// The length prefix is checked against the message type before anything is read or
// allocated: fixed-size messages must have exactly their size; a piece carries 1 to
// BlockSize bytes; a bitfield has exactly ceil(NumPieces/8) bytes with the spare bits clear
// (at most MaxBitfieldUnknown while NumPieces is 0); an extended payload is at most
// MaxExtendedPayload; an unknown message at most MaxUnknownMessage. Then have, request,
// cancel and piece indexes must be below NumPieces (when known), request and cancel
// lengths in 1..BlockSize, and request, cancel and piece spans within PieceSize(index)
// (when given). BEP 6 messages are accepted only when FastEnabled. Errors caused by the
// peer wrap ErrProtocol; the connection should then be closed. Each message must arrive
// within ReadTimeout of the call (keep-alives count as messages).
func (c *Conn) ReadMessage() (Message, error) {
	m, err := c.readMessage()
	if err != nil {
		return Message{}, fmt.Errorf("p2p: read from %v: %w", c.remote, err)
	}
	return m, nil
}

// NextBufferedPiece returns the next message when it is a piece message that the read buffer
// already holds whole, decoded and checked as by ReadMessage, without reading from the
// connection; ok is false, and nothing is consumed, otherwise. The payloads returned by the
// last ReadMessage and by every NextBufferedPiece after it stay valid together until the next
// ReadMessage, so that a reader can take the blocks that arrived together and write them at
// once.
func (c *Conn) NextBufferedPiece() (m Message, ok bool, err error) {
	if c.br.Buffered() < 5 {
		return Message{}, false, nil
	}
	hdr, _ := c.br.Peek(5)
	n := binary.BigEndian.Uint32(hdr)
	if MessageID(hdr[4]) != MsgPiece || uint64(c.br.Buffered()) < 4+uint64(n) {
		return Message{}, false, nil
	}
	// Whole in the buffer: readMessage peeks and discards within it, and never fills it.
	if m, err = c.readMessage(); err != nil {
		return Message{}, false, fmt.Errorf("p2p: read from %v: %w", c.remote, err)
	}
	return m, true, nil
}

func (c *Conn) readMessage() (Message, error) {
	lim := c.limits()
	for {
		c.dr.armed = false
		hdr, err := c.br.Peek(4)
		if err != nil {
			return Message{}, eofErr(err, len(hdr) > 0)
		}
		n := binary.BigEndian.Uint32(hdr)
		if n == 0 {
			_, _ = c.br.Discard(4)
			return Message{KeepAlive: true}, nil
		}
		hdr, err = c.br.Peek(5)
		if err != nil {
			return Message{}, eofErr(err, true)
		}
		m := Message{ID: MessageID(hdr[4])}
		n-- // body length
		skip, err := checkFrame(m.ID, n, &lim)
		if err != nil {
			return Message{}, err
		}
		_, _ = c.br.Discard(5)
		if skip {
			if _, err := c.br.Discard(int(n)); err != nil {
				return Message{}, eofErr(err, true)
			}
			continue
		}
		var body []byte
		switch {
		case n == 0:
		case int(n) <= c.br.Size():
			body, err = c.br.Peek(int(n))
			if err != nil {
				return Message{}, eofErr(err, true)
			}
			_, _ = c.br.Discard(int(n))
		default:
			if cap(c.buf) < int(n) {
				c.buf = make([]byte, n)
			}
			body = c.buf[:n]
			if _, err := io.ReadFull(c.br, body); err != nil {
				return Message{}, eofErr(err, true)
			}
		}
		if err := decodeBody(&m, body, &lim); err != nil {
			return Message{}, err
		}
		return m, nil
	}
}

// eofErr turns an EOF inside a message into io.ErrUnexpectedEOF.
func eofErr(err error, inMessage bool) error {
	if inMessage && err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteMessage encodes m into the write buffer; the data is sent when the buffer fills
// or on Flush. A piece's block is copied once, into the buffer (or written straight to
// the socket when the buffer is empty and the block larger than it).
func (c *Conn) WriteMessage(m Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr, payload, err := appendHeader(c.hdr[:0], m)
	if err != nil {
		return err
	}
	if _, err := c.bw.Write(hdr); err != nil {
		return fmt.Errorf("p2p: write %v to %v: %w", m.ID, c.remote, err)
	}
	if len(payload) > 0 {
		if _, err := c.bw.Write(payload); err != nil {
			return fmt.Errorf("p2p: write %v to %v: %w", m.ID, c.remote, err)
		}
	}
	return nil
}

// Flush sends the buffered messages.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("p2p: flush to %v: %w", c.remote, err)
	}
	return nil
}

// Buffered returns the number of bytes written but not yet flushed.
func (c *Conn) Buffered() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.bw.Buffered()
}
