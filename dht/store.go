package dht

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	mrand "math/rand/v2"
	"net/netip"
	"time"
)

// tokenRotation is how often the token secret changes; tokens of the current and the previous
// secret are accepted, so a token is valid for 5 to 10 minutes.
const tokenRotation = 5 * time.Minute

// tokenLen is the length of the tokens we hand out.
const tokenLen = 8

// tokenSecrets makes and checks announce tokens: SHA-1 over the requester's IP and a secret.
type tokenSecrets struct {
	cur, prev [16]byte
	rotated   time.Time
}

func newTokenSecrets(now time.Time) *tokenSecrets {
	t := &tokenSecrets{rotated: now}
	rand.Read(t.cur[:])
	rand.Read(t.prev[:])
	return t
}

// rotate replaces the secret when it is older than tokenRotation.
func (t *tokenSecrets) rotate(now time.Time) {
	elapsed := now.Sub(t.rotated)
	if elapsed < tokenRotation {
		return
	}
	if elapsed >= 2*tokenRotation {
		rand.Read(t.prev[:]) // both secrets are too old: no earlier token stays valid
	} else {
		t.prev = t.cur
	}
	rand.Read(t.cur[:])
	t.rotated = now
}

func tokenFor(ip netip.Addr, secret [16]byte) string {
	h := sha1.New()
	b := ip.Unmap().AsSlice()
	h.Write(b)
	h.Write(secret[:])
	return string(h.Sum(nil)[:tokenLen])
}

// token returns the token for ip under the current secret.
func (t *tokenSecrets) token(ip netip.Addr, now time.Time) string {
	t.rotate(now)
	return tokenFor(ip, t.cur)
}

// valid reports whether tok was handed to ip under the current or the previous secret.
func (t *tokenSecrets) valid(ip netip.Addr, tok string, now time.Time) bool {
	t.rotate(now)
	if len(tok) != tokenLen {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(tokenFor(ip, t.cur))) == 1 ||
		subtle.ConstantTimeCompare([]byte(tok), []byte(tokenFor(ip, t.prev))) == 1
}

// peerStore holds the peers announced to us, with expiry, bounded per info hash and in the
// number of info hashes.
type peerStore struct {
	maxPerHash int
	maxHashes  int
	ttl        time.Duration
	m          map[[20]byte]map[netip.AddrPort]time.Time // peer -> expiry
	total      int
}

func newPeerStore(maxPerHash, maxHashes int, ttl time.Duration) *peerStore {
	return &peerStore{maxPerHash: maxPerHash, maxHashes: maxHashes, ttl: ttl, m: make(map[[20]byte]map[netip.AddrPort]time.Time)}
}

// add stores peer under h. When h holds maxPerHash peers, the one expiring first is replaced;
// when maxHashes hashes are stored, a new hash is refused (after dropping expired peers).
func (p *peerStore) add(h [20]byte, peer netip.AddrPort, now time.Time) bool {
	set, ok := p.m[h]
	if !ok {
		if len(p.m) >= p.maxHashes {
			p.expire(now)
			if len(p.m) >= p.maxHashes {
				return false
			}
		}
		set = make(map[netip.AddrPort]time.Time)
		p.m[h] = set
	}
	if _, ok := set[peer]; !ok {
		if len(set) >= p.maxPerHash {
			var oldest netip.AddrPort
			var oldestT time.Time
			for a, exp := range set {
				if oldestT.IsZero() || exp.Before(oldestT) {
					oldest, oldestT = a, exp
				}
			}
			delete(set, oldest)
			p.total--
		}
		p.total++
	}
	set[peer] = now.Add(p.ttl)
	return true
}

// get returns up to n random peers stored under h that have not expired and that keep accepts
// (nil accepts all).
func (p *peerStore) get(h [20]byte, n int, now time.Time, keep func(netip.AddrPort) bool) []netip.AddrPort {
	set := p.m[h]
	out := make([]netip.AddrPort, 0, min(n, len(set)))
	seen := 0
	for a, exp := range set {
		if !now.Before(exp) || (keep != nil && !keep(a)) {
			continue
		}
		// Reservoir sampling: a uniform random subset of size n.
		seen++
		if len(out) < n {
			out = append(out, a)
		} else if j := mrand.IntN(seen); j < n {
			out[j] = a
		}
	}
	return out
}

// expire drops every expired peer, and hashes left empty.
func (p *peerStore) expire(now time.Time) {
	for h, set := range p.m {
		for a, exp := range set {
			if !now.Before(exp) {
				delete(set, a)
				p.total--
			}
		}
		if len(set) == 0 {
			delete(p.m, h)
		}
	}
}

// rateLimiter is a per-source-IP token bucket with a bounded number of tracked addresses.
type rateLimiter struct {
	rate, burst float64
	max         int
	m           map[netip.Addr]*tokenBucket
	lastSweep   time.Time
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst, max int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), max: max, m: make(map[netip.Addr]*tokenBucket)}
}

// allow takes one token from ip's bucket, reporting false when it is empty.
func (r *rateLimiter) allow(ip netip.Addr, now time.Time) bool {
	b, ok := r.m[ip]
	if !ok {
		if len(r.m) >= r.max {
			r.makeRoom(now)
		}
		b = &tokenBucket{tokens: r.burst, last: now}
		r.m[ip] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(r.burst, b.tokens+el*r.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// makeRoom frees at least one slot: buckets idle long enough to be full again are forgotten
// (at most once a second, a full sweep); otherwise an arbitrary one is.
func (r *rateLimiter) makeRoom(now time.Time) {
	if now.Sub(r.lastSweep) >= time.Second {
		r.lastSweep = now
		r.sweep(now)
	}
	for ip := range r.m {
		if len(r.m) < r.max {
			break
		}
		delete(r.m, ip)
	}
}

// sweep forgets the buckets that have refilled completely.
func (r *rateLimiter) sweep(now time.Time) {
	full := time.Duration(r.burst / r.rate * float64(time.Second))
	for ip, b := range r.m {
		if now.Sub(b.last) >= full {
			delete(r.m, ip)
		}
	}
}
