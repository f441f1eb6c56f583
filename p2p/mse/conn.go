package mse

import (
	"bufio"
	"crypto/rc4"
	"net"
	"sync"
)

// writeChunk is the most a Write encrypts at a time (into the connection's scratch buffer):
// the size of p2p's write buffer, so that one flush costs one system call.
const writeChunk = 64 << 10

// Conn is a connection after the handshake. It carries the payload stream: decrypted on
// Read and encrypted on Write with RC4, or passed through when plaintext was selected.
// Deadlines, addresses and Close are the underlying connection's. One goroutine may read
// while others write; writes are serialized.
type Conn struct {
	net.Conn
	method Methods
	skey   [20]byte

	// read side, owned by the reading goroutine
	pending []byte        // the decrypted initial payload not read yet (receiver only)
	br      *bufio.Reader // bytes read ahead during the handshake, then the socket
	dec     *rc4.Cipher   // nil for plaintext

	// write side
	wmu  sync.Mutex
	enc  *rc4.Cipher // nil for plaintext
	wbuf []byte
}

func newConn(nc net.Conn, br *bufio.Reader, method Methods, skey [20]byte, ia []byte, enc, dec *rc4.Cipher) *Conn {
	c := &Conn{Conn: nc, method: method, skey: skey, pending: ia, br: br}
	if method == RC4 {
		c.enc, c.dec = enc, dec
	}
	return c
}

// WriteSize passes on the underlying connection's preferred write size (0 when it has
// none): encryption keeps every write's length.
func (c *Conn) WriteSize() int {
	if ws, ok := c.Conn.(interface{ WriteSize() int }); ok {
		return ws.WriteSize()
	}
	return 0
}

// Method returns the method the receiver selected: RC4 or Plaintext.
func (c *Conn) Method() Methods { return c.method }

// SKey returns the stream's SKEY (the torrent's info hash).
func (c *Conn) SKey() [20]byte { return c.skey }

// Read reads payload bytes: first what remains of the initial payload, then the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	var n int
	var err error
	if c.br != nil && c.br.Buffered() > 0 {
		n, err = c.br.Read(p)
	} else {
		c.br = nil // drained: read the socket straight into p from now on
		n, err = c.Conn.Read(p)
	}
	if c.dec != nil {
		c.dec.XORKeyStream(p[:n], p[:n])
	}
	return n, err
}

// Write encrypts p (when RC4 was selected) and sends it. After a failed write the streams
// are out of step with the peer: close the connection.
func (c *Conn) Write(p []byte) (int, error) {
	if c.enc == nil {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wbuf == nil {
		c.wbuf = make([]byte, min(len(p), writeChunk))
	}
	written := 0
	for len(p) > 0 {
		if len(c.wbuf) < min(len(p), writeChunk) {
			c.wbuf = make([]byte, min(len(p), writeChunk))
		}
		chunk := c.wbuf[:min(len(p), len(c.wbuf))]
		c.enc.XORKeyStream(chunk, p[:len(chunk)])
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[len(chunk):]
	}
	return written, nil
}
