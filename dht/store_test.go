package dht

import (
	"net/netip"
	"testing"
	"time"
)

func TestTokenRotation(t *testing.T) {
	now := time.Unix(1e9, 0)
	ts := newTokenSecrets(now)
	ip := netip.MustParseAddr("127.0.0.1")
	other := netip.MustParseAddr("127.0.0.2")
	tok := ts.token(ip, now)
	if !ts.valid(ip, tok, now) {
		t.Fatal("fresh token refused")
	}
	if ts.valid(other, tok, now) {
		t.Error("token accepted from another IP")
	}
	if ts.valid(ip, tok[:4], now) || ts.valid(ip, "", now) {
		t.Error("truncated token accepted")
	}
	// After one rotation (5 min) the previous secret still works.
	t1 := now.Add(6 * time.Minute)
	if !ts.valid(ip, tok, t1) {
		t.Error("token refused after one rotation")
	}
	if ts.token(ip, t1) == tok {
		t.Error("secret did not rotate")
	}
	// After two rotations it is refused.
	if ts.valid(ip, tok, t1.Add(6*time.Minute)) {
		t.Error("token accepted after two rotations")
	}
	// A long pause invalidates both secrets at once.
	ts2 := newTokenSecrets(now)
	tok2 := ts2.token(ip, now)
	if ts2.valid(ip, tok2, now.Add(time.Hour)) {
		t.Error("token accepted an hour later")
	}
}

func TestPeerStore(t *testing.T) {
	now := time.Unix(1e9, 0)
	ps := newPeerStore(3, 2, 30*time.Minute)
	h1, h2, h3 := [20]byte{1}, [20]byte{2}, [20]byte{3}
	for i := range 5 {
		if !ps.add(h1, addrN(i), now.Add(time.Duration(i)*time.Second)) {
			t.Fatal("add refused")
		}
	}
	if got := ps.get(h1, 10, now.Add(time.Minute), nil); len(got) != 3 || ps.total != 3 {
		t.Fatalf("per-hash bound: %d peers, total %d", len(got), ps.total)
	}
	// The oldest were replaced.
	for _, p := range ps.get(h1, 10, now.Add(time.Minute), nil) {
		if p == addrN(0) || p == addrN(1) {
			t.Errorf("oldest peer %v kept", p)
		}
	}
	if got := ps.get(h1, 2, now.Add(time.Minute), nil); len(got) != 2 {
		t.Errorf("get bounded to 2 returned %d", len(got))
	}
	ps.add(h2, addrN(9), now)
	if ps.add(h3, addrN(9), now) {
		t.Error("third hash accepted with MaxHashes 2")
	}
	// Expiry.
	late := now.Add(31 * time.Minute)
	if got := ps.get(h2, 10, late, nil); len(got) != 0 {
		t.Errorf("expired peers returned: %v", got)
	}
	if !ps.add(h3, addrN(9), late) {
		t.Error("new hash refused after the others expired")
	}
	ps.expire(late)
	if len(ps.m) != 1 || ps.total != 1 {
		t.Errorf("after expiry: %d hashes, %d peers", len(ps.m), ps.total)
	}
}

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1e9, 0)
	rl := newRateLimiter(10, 5, 100)
	ip := netip.MustParseAddr("192.0.2.1")
	n := 0
	for range 20 {
		if rl.allow(ip, now) {
			n++
		}
	}
	if n != 5 {
		t.Errorf("burst allowed %d, want 5", n)
	}
	if !rl.allow(ip, now.Add(100*time.Millisecond)) || rl.allow(ip, now.Add(100*time.Millisecond)) {
		t.Error("refill of one token per 100 ms wrong")
	}
	if !rl.allow(netip.MustParseAddr("192.0.2.2"), now) {
		t.Error("other IP limited")
	}
	// Bounded memory under a flood from many addresses.
	for i := range 10000 {
		rl.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if len(rl.m) > 100 {
		t.Errorf("limiter tracks %d addresses, bound is 100", len(rl.m))
	}
	rl.sweep(now.Add(time.Minute))
	if len(rl.m) != 0 {
		t.Errorf("sweep left %d refilled buckets", len(rl.m))
	}
}
