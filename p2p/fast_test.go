package p2p

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
)

func TestAllowedFastSetBEP6(t *testing.T) {
	var ih [20]byte
	copy(ih[:], bytes.Repeat([]byte{0xaa}, 20))
	ip := netip.MustParseAddr("80.4.4.200")
	cases := []struct {
		k    int
		want []uint32
	}{
		{7, []uint32{1059, 431, 808, 1217, 287, 376, 1188}},
		{9, []uint32{1059, 431, 808, 1217, 287, 376, 1188, 353, 508}},
	}
	for _, c := range cases {
		if got := AllowedFastSet(ih, ip, 1313, c.k); !reflect.DeepEqual(got, c.want) {
			t.Errorf("k=%d: got %v, want %v", c.k, got, c.want)
		}
	}
	// The same /24, and the IPv4-mapped form, give the same set.
	want := AllowedFastSet(ih, ip, 1313, 7)
	for _, s := range []string{"80.4.4.1", "80.4.4.255", "::ffff:80.4.4.200"} {
		if got := AllowedFastSet(ih, netip.MustParseAddr(s), 1313, 7); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", s, got, want)
		}
	}
	if got := AllowedFastSet(ih, netip.MustParseAddr("80.4.5.200"), 1313, 7); reflect.DeepEqual(got, want) {
		t.Errorf("another /24 gives the same set %v", got)
	}
}

func TestAllowedFastSetEdges(t *testing.T) {
	var ih [20]byte
	ip := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct{ n, k, want int }{
		{0, 10, 0}, {-1, 10, 0}, {10, 0, 0}, {10, -3, 0}, {1, 10, 1}, {3, 10, 3}, {10, 10, 10}, {1 << 20, 10, 10},
	} {
		got := AllowedFastSet(ih, ip, c.n, c.k)
		if len(got) != c.want {
			t.Errorf("n=%d k=%d: %d pieces %v, want %d", c.n, c.k, len(got), got, c.want)
		}
		seen := map[uint32]bool{}
		for _, i := range got {
			if int(i) >= c.n || seen[i] {
				t.Errorf("n=%d k=%d: bad or repeated index %d in %v", c.n, c.k, i, got)
			}
			seen[i] = true
		}
	}
	if got := AllowedFastSet(ih, netip.Addr{}, 10, 5); got != nil {
		t.Errorf("invalid address: %v", got)
	}
	// IPv6: the same /64 gives the same set, another /64 another one.
	a := AllowedFastSet(ih, netip.MustParseAddr("2001:db8:1:2::1"), 1000, 10)
	b := AllowedFastSet(ih, netip.MustParseAddr("2001:db8:1:2:ffff::9"), 1000, 10)
	c := AllowedFastSet(ih, netip.MustParseAddr("2001:db8:1:3::1"), 1000, 10)
	if len(a) != 10 || !reflect.DeepEqual(a, b) || reflect.DeepEqual(a, c) {
		t.Errorf("IPv6 sets: %v %v %v", a, b, c)
	}
	// A larger k extends a smaller one (BEP 6: "the same k plus one more").
	small, large := AllowedFastSet(ih, ip, 500, 5), AllowedFastSet(ih, ip, 500, 6)
	if !reflect.DeepEqual(small, large[:5]) {
		t.Errorf("k=5 %v is not a prefix of k=6 %v", small, large)
	}
}
