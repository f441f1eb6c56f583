package utp

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// lossyConn is a real loopback UDP socket whose sends drop a share of datagrams and hold
// others back, so that they arrive after later ones.
type lossyConn struct {
	net.PacketConn
	loss, reorder float64

	mu      sync.Mutex
	rng     *rand.Rand
	held    []byte
	heldTo  net.Addr
	timer   *time.Timer
	dropped int
	delayed int
}

func newLossyConn(t testing.TB, ip string, loss, reorder float64, seed uint64) *lossyConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	return &lossyConn{PacketConn: pc, loss: loss, reorder: reorder, rng: rand.New(rand.NewPCG(seed, 7))}
}

func (l *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch r := l.rng.Float64(); {
	case r < l.loss:
		l.dropped++
		return len(b), nil
	case r < l.loss+l.reorder && l.held == nil:
		// Hold it until the next datagram has gone, or 2 ms.
		l.delayed++
		l.held, l.heldTo = append([]byte(nil), b...), addr
		l.timer = time.AfterFunc(2*time.Millisecond, l.release)
		return len(b), nil
	}
	n, err := l.PacketConn.WriteTo(b, addr)
	l.releaseLocked()
	return n, err
}

func (l *lossyConn) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked()
}

func (l *lossyConn) releaseLocked() {
	if l.held != nil {
		l.timer.Stop()
		l.PacketConn.WriteTo(l.held, l.heldTo)
		l.held = nil
	}
}

func (l *lossyConn) counts() (dropped, delayed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped, l.delayed
}

// TestLossAndReorder: with 5 % of datagrams dropped and 5 % reordered in both directions,
// a transfer stays byte-identical (64 MiB; 16 MiB under the race detector or -short).
func TestLossAndReorder(t *testing.T) {
	size := 64 << 20
	if raceEnabled || testing.Short() {
		size = 16 << 20
	}
	la := newLossyConn(t, "127.0.0.1", 0.05, 0.05, 1)
	lb := newLossyConn(t, "127.0.0.2", 0.05, 0.05, 2)
	a, b := NewSocket(la, Config{}), NewSocket(lb, Config{})
	t.Cleanup(func() { a.Close(); b.Close() })
	ca, cb := connect(t, a, b)
	d := transfer(t, ca, cb, randomBytes(size, 3), 60*time.Second)
	da, ra := la.counts()
	db, rb := lb.counts()
	st := ca.Stats()
	t.Logf("%d MiB in %v (%.1f MB/s); dropped %d+%d, reordered %d+%d; sender %+v",
		size>>20, d, float64(size)/d.Seconds()/1e6, da, db, ra, rb, st)
	if st.Retransmits == 0 || da == 0 || db == 0 {
		t.Fatalf("no loss happened: dropped %d+%d, retransmits %d", da, db, st.Retransmits)
	}
}
