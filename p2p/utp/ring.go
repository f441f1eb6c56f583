package utp

import (
	"os"
	"sync"
	"time"
)

// byteRing is a FIFO of bytes that grows (doubling) up to the limit its callers enforce, so
// a connection that moves little data holds a small buffer.
type byteRing struct {
	buf  []byte
	r, n int
}

func (q *byteRing) Len() int { return q.n }

// write appends up to limit-Len() bytes of p and returns how many it took.
func (q *byteRing) write(p []byte, limit int) int {
	room := limit - q.n
	if room <= 0 || len(p) == 0 {
		return 0
	}
	if len(p) > room {
		p = p[:room]
	}
	if q.n+len(p) > len(q.buf) {
		size := max(len(q.buf), 4096)
		for size < q.n+len(p) {
			size *= 2
		}
		size = min(size, max(limit, q.n+len(p)))
		nb := make([]byte, size)
		q.peekInto(nb[:q.n])
		q.buf, q.r = nb, 0
	}
	w := (q.r + q.n) % len(q.buf)
	c := copy(q.buf[w:], p)
	copy(q.buf, p[c:])
	q.n += len(p)
	return len(p)
}

// peekInto copies the first len(p) bytes (at most Len()) into p without removing them.
func (q *byteRing) peekInto(p []byte) int {
	if len(p) > q.n {
		p = p[:q.n]
	}
	if len(p) == 0 {
		return 0
	}
	c := copy(p, q.buf[q.r:])
	copy(p[c:], q.buf)
	return len(p)
}

// read removes up to len(p) bytes into p.
func (q *byteRing) read(p []byte) int {
	n := q.peekInto(p)
	q.r = (q.r + n) % max(len(q.buf), 1)
	q.n -= n
	if q.n == 0 {
		q.r = 0
	}
	return n
}

// deadline is a settable point in time that closes a channel when it passes (as net.Pipe
// does), so that blocked reads and writes can select on it.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

// set arms the deadline at t; the zero time clears it, a past time fires it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired and closed it
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel closed once the deadline has passed.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// errDeadline is what a read or write past its deadline returns (it is a net.Error whose
// Timeout() is true, as the net package's).
var errDeadline = os.ErrDeadlineExceeded
