// Package netsim puts the wide-area network between peers on one machine: a TCP forwarder
// that adds one-way delay and caps the rate of each connection (the kernel here has no netem),
// and a tracker that hands out a fixed list of peers (the forwarders), so that any client, ours
// or another, reaches the seeders only through them. It is test and benchmark infrastructure.
package netsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Link describes one direction of a simulated path.
type Link struct {
	// Delay is added to every byte's trip (one way).
	Delay time.Duration
	// Rate caps the bytes per second of each connection in each direction (0 = no cap).
	Rate int64
}

// chunkSize is how much a forwarder reads at once, and the rate limiter's burst.
const chunkSize = 16 << 10

// queueChunks bounds what one direction of a connection holds in flight: about what a socket
// buffer would (queueChunks × chunkSize), so a slow link pushes back on its sender.
const queueChunks = 64

// Forwarder accepts TCP connections on its listener and forwards each to Target over a Link.
type Forwarder struct {
	ln     net.Listener
	target string
	link   Link
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// NewForwarder listens on listen and forwards to target. Close stops it.
func NewForwarder(listen, target string, link Link, log *slog.Logger) (*Forwarder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	f := &Forwarder{ln: ln, target: target, link: link, log: log, conns: map[net.Conn]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(1)
	go f.acceptLoop()
	return f, nil
}

// Addr is the address the forwarder accepts on.
func (f *Forwarder) Addr() net.Addr { return f.ln.Addr() }

// Close stops accepting, cuts every forwarded connection and waits for its goroutines.
func (f *Forwarder) Close() error {
	f.cancel()
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *Forwarder) acceptLoop() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.serve(in)
	}
}

// serve forwards one connection, both directions over the link, until either side closes.
func (f *Forwarder) serve(in net.Conn) {
	defer f.wg.Done()
	if !f.track(in) {
		in.Close()
		return
	}
	defer f.untrack(in)
	var d net.Dialer
	out, err := d.DialContext(f.ctx, "tcp", f.target)
	if err != nil {
		f.log.Debug("forwarder: dial", "target", f.target, "err", err)
		return
	}
	if !f.track(out) {
		out.Close()
		return
	}
	defer f.untrack(out)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.pipe(out, in) }()
	go func() { defer wg.Done(); f.pipe(in, out) }()
	wg.Wait()
}

// chunk is bytes read at a moment, due at the other end Delay later.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst over the link: each chunk leaves Delay after it arrived, no faster
// than Rate. When either side ends, both connections are closed (BitTorrent never half-closes).
func (f *Forwarder) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	q := make(chan chunk, queueChunks)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var lim *rate.Limiter
		if f.link.Rate > 0 {
			lim = rate.NewLimiter(rate.Limit(f.link.Rate), chunkSize)
		}
		for c := range q {
			if wait := time.Until(c.due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-f.ctx.Done():
					return
				}
			}
			if lim != nil {
				if err := lim.WaitN(f.ctx, len(c.data)); err != nil {
					return
				}
			}
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}()
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case q <- chunk{data: buf[:n], due: time.Now().Add(f.link.Delay)}:
			case <-done:
				close(q)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				f.log.Debug("forwarder: read", "err", err)
			}
			close(q)
			<-done
			return
		}
	}
}
