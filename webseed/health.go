package webseed

import (
	"errors"
	"time"
)

// A rate sample sums the bytes of at least rateFold of busy time, taken when no fetch is in
// flight, or after rateFoldBusy without a pause.
const (
	rateFold     = 500 * time.Millisecond
	rateFoldBusy = 2 * time.Second
)

// rateWeight is the weight of a new sample in the smoothed rate and latency.
const rateWeight = 0.3

// health is a source's record of its server. Its owner is Source.mu.
type health struct {
	inflight int // fetches in flight

	// The rate is measured over busy time only (time with at least one fetch in flight),
	// so that a server the scheduler leaves idle keeps the rate it showed when used.
	busySince time.Time
	winBusy   time.Duration // busy time not yet folded into rate
	winBytes  int64         // bytes received in that time
	rate      float64       // smoothed bytes per busy second; 0 until measured
	latency   time.Duration // smoothed time to the response headers

	downloaded int64 // bytes received by successful fetches
	failures   int   // consecutive failed fetches (busy answers excluded)
	errors     int   // failed fetches in all
	badPieces  int
	dropped    bool
	retryAt    time.Time // no request before this
	lastErr    error
}

func (h *health) start(now time.Time) {
	if h.inflight == 0 {
		h.busySince = now
	}
	h.inflight++
}

// finish ends a fetch that received n bytes in all. Bytes count when their fetch ends, so a
// sample is taken when no fetch is left in flight (or after a long busy stretch, where the
// bytes of the fetches still in flight matter little).
func (h *health) finish(now time.Time, n int64) {
	h.inflight--
	h.winBytes += n
	h.winBusy += now.Sub(h.busySince)
	h.busySince = now
	if h.winBusy >= rateFold && (h.inflight == 0 || h.winBusy >= rateFoldBusy) {
		sample := float64(h.winBytes) / h.winBusy.Seconds()
		if h.rate == 0 {
			h.rate = sample
		} else {
			h.rate += rateWeight * (sample - h.rate)
		}
		h.winBusy, h.winBytes = 0, 0
	}
}

func (h *health) observeLatency(d time.Duration) {
	if h.latency == 0 {
		h.latency = d
	} else {
		h.latency += time.Duration(rateWeight * float64(d-h.latency))
	}
}

// currentRate is the smoothed rate, or while none is measured yet the rate so far.
func (h *health) currentRate() float64 {
	if h.rate > 0 || h.winBusy <= 0 {
		return h.rate
	}
	return float64(h.winBytes) / h.winBusy.Seconds()
}

func (h *health) succeeded(n int64) {
	h.downloaded += n
	h.failures = 0
}

// failed records a failed fetch: an answer that asks to wait (a StatusError with RetryAfter)
// is honoured as it is; anything else backs off exponentially, doubling from base per
// consecutive failure up to limit. A Retry-After never shortens a back-off.
func (h *health) failed(now time.Time, err error, base, limit time.Duration) {
	h.errors++
	h.lastErr = err
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		h.waitUntil(now.Add(se.RetryAfter))
		if se.Code == 503 || se.Code == 429 {
			return // busy, not broken: BEP 19 says not to discard a busy server
		}
	}
	h.failures++
	h.waitUntil(now.Add(backoff(h.failures, base, limit)))
}

func (h *health) waitUntil(t time.Time) {
	if t.After(h.retryAt) {
		h.retryAt = t
	}
}

// backoff is base doubled failures-1 times, at most limit.
func backoff(failures int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func (h *health) ready(now time.Time, maxInflight int) bool {
	return !h.dropped && h.inflight < maxInflight && !now.Before(h.retryAt)
}
