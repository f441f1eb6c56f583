package lsd

import (
	"net/netip"
	"time"
)

// limiter holds the receive-side limits of a Service (see the package comment). It is not
// safe for concurrent use: Service.mu guards it.
type limiter struct {
	// A window of one second and the messages parsed in it, over all sources.
	windowStart time.Time
	inWindow    int
	// Each source's token bucket of reports.
	sources map[netip.Addr]*bucket
	// When each (torrent, peer) pair was last reported.
	recent map[recentKey]time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

type recentKey struct {
	ih   [20]byte
	peer netip.AddrPort
}

func newLimiter() limiter {
	return limiter{sources: map[netip.Addr]*bucket{}, recent: map[recentKey]time.Time{}}
}

// message reports whether one more datagram may be parsed now.
func (l *limiter) message(now time.Time) bool {
	if now.Sub(l.windowStart) >= time.Second {
		l.windowStart, l.inWindow = now, 0
	}
	if l.inWindow >= maxMessagesPerSecond {
		return false
	}
	l.inWindow++
	return true
}

// report reports whether the peer may be reported for ih now, and if so records it.
func (l *limiter) report(ih [20]byte, peer netip.AddrPort, now time.Time) bool {
	k := recentKey{ih, peer}
	if at, ok := l.recent[k]; ok && now.Sub(at) < reportDedupe {
		return false
	}
	b := l.sources[peer.Addr()]
	if b == nil {
		if len(l.sources) >= maxSources && !l.pruneSources(now) {
			return false
		}
		b = &bucket{tokens: reportBurst, at: now}
		l.sources[peer.Addr()] = b
	}
	b.tokens = min(reportBurst, b.tokens+float64(now.Sub(b.at))/float64(reportRefill))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	if len(l.recent) >= maxRecent && !l.pruneRecent(now) {
		return false
	}
	b.tokens--
	l.recent[k] = now
	return true
}

// pruneSources forgets sources whose bucket has filled up again (they would start full
// anyway) and reports whether room was made.
func (l *limiter) pruneSources(now time.Time) bool {
	for a, b := range l.sources {
		if b.tokens+float64(now.Sub(b.at))/float64(reportRefill) >= reportBurst {
			delete(l.sources, a)
		}
	}
	return len(l.sources) < maxSources
}

// pruneRecent forgets pairs reported longer than reportDedupe ago and reports whether room
// was made.
func (l *limiter) pruneRecent(now time.Time) bool {
	for k, at := range l.recent {
		if now.Sub(at) >= reportDedupe {
			delete(l.recent, k)
		}
	}
	return len(l.recent) < maxRecent
}
