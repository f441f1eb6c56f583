package dht

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// bep42Vectors are the test vectors of BEP 42: an address, the random number r came from, and
// an example node id.
var bep42Vectors = []struct {
	ip   string
	rand byte
	id   string
}{
	{"124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"},
	{"21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"},
	{"65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"},
	{"84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"},
	{"43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"},
}

func TestBEP42Vectors(t *testing.T) {
	for _, v := range bep42Vectors {
		ip := netip.MustParseAddr(v.ip)
		b, _ := hex.DecodeString(v.id)
		id := [20]byte(b)
		crc := bep42CRC(ip, v.rand&7)
		// The first 21 bits of the example id come from the CRC.
		if got, want := crc>>11, uint32(id[0])<<13|uint32(id[1])<<5|uint32(id[2])>>3; got != want {
			t.Errorf("%s r=%d: crc %08x, its first 21 bits %x, want %x", v.ip, v.rand&7, crc, got, want)
		}
		if !nodeIDMatches(id, ip) {
			t.Errorf("%s: example id %s does not verify", v.ip, v.id)
		}
		// The id is bound to the address: no prefix bit can change.
		for bit := range 21 {
			bad := id
			bad[bit/8] ^= 0x80 >> (bit % 8)
			if nodeIDMatches(bad, ip) {
				t.Errorf("%s: id with bit %d flipped still verifies", v.ip, bit)
			}
		}
		// The three bits after the prefix and every byte before the last are free.
		free := id
		free[2] ^= 7
		free[10] ^= 0xff
		free[19] ^= 0xf8
		if !nodeIDMatches(free, ip) {
			t.Errorf("%s: changing free bits broke the id", v.ip)
		}
		// A made id verifies for its address, IPv4 and IPv6 (whose last 8 bytes do not count).
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, v.rand, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
		m6 := makeNodeID(v6)
		if !nodeIDMatches(m6, v6) || !nodeIDMatches(m6, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, v.rand, 1, 2, 3})) {
			t.Errorf("IPv6 id %x does not verify for %v", m6, v6)
		}
		for range 20 {
			if m := makeNodeID(ip); !nodeIDMatches(m, ip) {
				t.Fatalf("%s: made id %x does not verify", v.ip, m)
			}
		}
	}
}
