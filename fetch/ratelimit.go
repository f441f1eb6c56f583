package fetch

import (
	"context"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Rate limits: one token bucket for the bytes every peer of every torrent of a client sends us
// (block payloads, counted as a peer's reader takes them off the connection, so that a capped
// reader leaves the rest in the kernel's buffers and TCP slows the sender down) and one for
// the block payloads we send (taken before a block is written). Inputs weighed: the limit in
// bytes per second (0 = none, set at start by Config and at any time by SetRateLimits) and the
// size of each block. Messages other than blocks are not counted: they are a few bytes each.

// minBurst is the smallest bucket: a block's payload (p2p.BlockSize) must fit whole, or a
// peer would wait for tokens that can never all be there at once.
const minBurst = 64 << 10

// burstFraction sets the bucket to this fraction of a second's worth of bytes: small enough
// that a rate measured over seconds stays within a few percent of the limit, large enough that
// a fast limit does not wake the peers for every block.
const burstFraction = 20

// byteLimiter is one direction's bucket; limit 0 lets everything through without touching it.
type byteLimiter struct {
	limit atomic.Int64 // bytes per second, 0 = none
	lim   *rate.Limiter
}

func newByteLimiter(bps int64) *byteLimiter {
	l := &byteLimiter{lim: rate.NewLimiter(rate.Inf, minBurst)}
	l.set(bps)
	return l
}

// set changes the limit; waits in progress keep the reservations they made.
func (l *byteLimiter) set(bps int64) {
	bps = max(bps, 0)
	if bps == 0 {
		l.lim.SetLimit(rate.Inf)
	} else {
		l.lim.SetBurst(int(max(bps/burstFraction, minBurst)))
		l.lim.SetLimit(rate.Limit(bps))
	}
	l.limit.Store(bps)
}

// limited reports whether a limit is set.
func (l *byteLimiter) limited() bool { return l.limit.Load() != 0 }

// wait blocks until n bytes may pass, or ctx ends.
func (l *byteLimiter) wait(ctx context.Context, n int) error {
	if l.limit.Load() == 0 {
		return nil
	}
	for n > 0 {
		k := min(n, minBurst) // the burst is never smaller, even while set changes it
		if err := l.lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// RateLimits are a client's bandwidth caps in bytes per second; 0 means no cap.
type RateLimits struct {
	Download int64
	Upload   int64
}

// SetRateLimits changes the client-wide caps at once, for every torrent and peer.
func (c *Client) SetRateLimits(r RateLimits) {
	c.downLimit.set(r.Download)
	c.upLimit.set(r.Upload)
}

// RateLimits returns the caps in force.
func (c *Client) RateLimits() RateLimits {
	return RateLimits{Download: c.downLimit.limit.Load(), Upload: c.upLimit.limit.Load()}
}
