package rawnet

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/racebuild"
	"github.com/gotfs/gotfs/internal/testenv"
)

// TestTCP: a connection wrapped by TCP carries 32 MiB both ways at once, byte for
// byte (writes far larger than the socket buffers wait for room, reads for bytes); a read
// deadline ends a read that waits with a timeout; the peer's close is EOF; a closed
// connection's calls fail; anything but TCP is returned unwrapped.
func TestTCP(t *testing.T) {
	dialed, accepted := testenv.TCPPair(t)
	a, b := TCP(dialed), TCP(accepted)
	if _, ok := a.(*tcpConn); !ok && runtime.GOOS == "linux" && !racebuild.Enabled {
		t.Fatalf("TCP returned a %T for a TCP connection", a)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ab, ba := make([]byte, 32<<20), make([]byte, 32<<20)
	for i := range ab {
		ab[i], ba[i] = byte(rng.Uint32()), byte(rng.Uint32())
	}
	send := func(c net.Conn, p []byte, errc chan<- error) {
		n, err := c.Write(p)
		if err == nil && n != len(p) {
			err = io.ErrShortWrite
		}
		errc <- err
	}
	errc := make(chan error, 2)
	go send(a, ab, errc)
	go send(b, ba, errc)
	gotB, gotA := make([]byte, len(ab)), make([]byte, len(ba))
	readc := make(chan error, 1)
	go func() { _, err := io.ReadFull(b, gotB); readc <- err }()
	if _, err := io.ReadFull(a, gotA); err != nil {
		t.Fatal(err)
	}
	if err := <-readc; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(gotB, ab) || !bytes.Equal(gotA, ba) {
		t.Fatal("bytes differ")
	}

	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := a.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	a.SetReadDeadline(time.Time{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
	a.Close()
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if TCP(p1) != p1 {
		t.Fatal("TCP wrapped a connection that is not TCP")
	}
}
