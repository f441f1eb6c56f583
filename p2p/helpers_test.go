package p2p

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// memConn is a net.Conn reading from a fixed byte slice (optionally repeating it forever)
// and collecting what is written. Deadlines are ignored.
type memConn struct {
	data   []byte
	pos    int
	repeat bool
	out    bytes.Buffer
	drop   bool // discard writes
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.pos == len(m.data) {
		if !m.repeat || len(m.data) == 0 {
			return 0, io.EOF
		}
		m.pos = 0
	}
	n := copy(p, m.data[m.pos:])
	m.pos += n
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	if !m.drop {
		m.out.Write(p)
	}
	return len(p), nil
}

func (m *memConn) Close() error                       { return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

// connOver returns a Conn (handshake skipped) reading data through memConn.
func connOver(data []byte, opts Options, fast bool) (*Conn, *memConn) {
	mc := &memConn{data: data}
	c := newConn(mc)
	c.configure(opts, fast)
	return c, mc
}

// testOpts: 10 pieces of 32 KiB, the last one 1000 bytes.
func testOpts() Options {
	return Options{
		NumPieces: 10,
		PieceSize: func(i uint32) uint32 {
			if i == 9 {
				return 1000
			}
			return 32 * 1024
		},
		Reserved: ReservedBits(true, false, false),
	}
}

// encode returns the wire bytes of msgs.
func encode(t testing.TB, msgs ...Message) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		b, err = AppendMessage(b, m)
		if err != nil {
			t.Fatal(err)
		}
	}
	return b
}
