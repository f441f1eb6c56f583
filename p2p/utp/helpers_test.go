package utp

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

// listen opens a socket on a loopback address (127.0.0.x gives each peer its own address).
func listen(t testing.TB, ip string, cfg Config) *Socket {
	t.Helper()
	s, err := Listen("udp4", ip+":0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addrOf(t testing.TB, s *Socket) netip.AddrPort {
	t.Helper()
	return s.Addr().(*net.UDPAddr).AddrPort()
}

// connect dials b from a and returns both ends.
func connect(t testing.TB, a, b *Socket) (*Conn, *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := b.Accept()
		acc <- res{c, err}
	}()
	dc, err := a.Dial(ctx, addrOf(t, b))
	if err != nil {
		t.Fatal(err)
	}
	// The acceptor sees the connection once the initiator sends something.
	if _, err := dc.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	var r res
	select {
	case r = <-acc:
	case <-ctx.Done():
		t.Fatal("accept timed out")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(r.c, one); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close(); r.c.Close() })
	return dc.(*Conn), r.c.(*Conn)
}

// randomBytes is n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// transfer writes data on w (then closes it) while reading r to EOF, and checks the bytes
// arrive identical (compared as they come, which costs far less CPU than hashing them, so
// that BenchmarkLoopback measures the transport). It returns how long it took.
func transfer(t testing.TB, w, r net.Conn, data []byte, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		if err == nil {
			err = w.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	r.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 256<<10)
	got := 0
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if got+n > len(data) || !bytes.Equal(buf[:n], data[got:got+n]) {
				t.Fatalf("bytes %d to %d differ from what was sent (%d bytes)", got, got+n, len(data))
			}
			got += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", got, len(data), err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if got != len(data) {
		t.Fatalf("received %d bytes; sent %d", got, len(data))
	}
	return time.Since(start)
}
