package p2p

import (
	"context"
	"net"
	"testing"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/p2p/mse"
)

// benchPieces streams b.N piece messages from one Conn to the other over the given
// sockets and reads them back: round-trip throughput of the block path.
func benchPieces(b *testing.B, wn, rn net.Conn) {
	opts := Options{NumPieces: 1 << 20, PieceSize: func(uint32) uint32 { return 1 << 20 }}
	w, r := newConn(wn), newConn(rn)
	w.configure(opts, false)
	r.configure(opts, false)
	block := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := w.WriteMessage(Piece(uint32(i>>6), uint32(i&63)*BlockSize, block)); err != nil {
				errc <- err
				return
			}
		}
		errc <- w.Flush()
	}()
	for i := 0; i < b.N; i++ {
		m, err := r.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if m.ID != MsgPiece || len(m.Payload) != BlockSize {
			b.Fatalf("read %v", m)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReadPiece: piece messages through a loopback TCP pair.
func BenchmarkReadPiece(b *testing.B) {
	wn, rn := testenv.TCPPair(b)
	benchPieces(b, wn, rn)
}

// BenchmarkReadPiecePipe: piece messages through net.Pipe (no kernel).
func BenchmarkReadPiecePipe(b *testing.B) {
	wn, rn := net.Pipe()
	defer wn.Close()
	defer rn.Close()
	benchPieces(b, wn, rn)
}

// BenchmarkDecodePiece: ReadMessage alone, from memory.
func BenchmarkDecodePiece(b *testing.B) {
	data := encode(b, Piece(1, 0, make([]byte, BlockSize)))
	c := newConn(&memConn{data: data, repeat: true})
	c.configure(testOpts(), false)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWritePiece: WriteMessage alone, to a discarding socket.
func BenchmarkWritePiece(b *testing.B) {
	c, mc := connOver(nil, testOpts(), false)
	mc.drop = true
	block := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteMessage(Piece(1, 0, block)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadPieceRC4: BenchmarkReadPiece through an MSE connection that selected RC4: the
// ratio of the two is what encryption costs (scripts/bench.sh prints it).
func BenchmarkReadPieceRC4(b *testing.B) {
	wn, rn := testenv.TCPPair(b)
	skey := [20]byte{1}
	type result struct {
		c   *mse.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := mse.Receive(context.Background(), rn, func([20]byte) ([20]byte, bool) { return skey, true }, mse.RC4)
		ch <- result{c, err}
	}()
	wc, err := mse.Initiate(context.Background(), wn, skey, mse.RC4, nil)
	r := <-ch
	if err != nil || r.err != nil {
		b.Fatal(err, r.err)
	}
	benchPieces(b, wc, r.c)
}
