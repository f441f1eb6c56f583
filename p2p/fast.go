package p2p

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
)

// DefaultAllowedFast is the size of the allowed fast set BEP 6 suggests (k = 10).
const DefaultAllowedFast = 10

// AllowedFastSet returns the allowed fast set of BEP 6 for the peer at ip: k distinct piece
// indexes (fewer when the torrent has fewer than k pieces), in the order the canonical
// algorithm generates them. The peer's address is masked first, so that several addresses of
// one network get one set: an IPv4 address (or IPv4-mapped IPv6 one) to its /24, as BEP 6
// says; an IPv6 address, for which BEP 6 has no provision, to its /64 (16 bytes, the low 8
// zero). It returns nil when numPieces or k is not positive or ip is invalid.
//
// The BEP 6 messages themselves are built with SuggestPiece, HaveAll, HaveNone,
// RejectRequest and AllowedFast.
func AllowedFastSet(infoHash [20]byte, ip netip.Addr, numPieces, k int) []uint32 {
	if numPieces <= 0 || k <= 0 || !ip.IsValid() {
		return nil
	}
	k = min(k, numPieces)
	var x []byte
	if ip = ip.Unmap(); ip.Is4() {
		a := ip.As4()
		a[3] = 0
		x = append(x, a[:]...)
	} else {
		a := ip.As16()
		clear(a[8:])
		x = append(x, a[:]...)
	}
	x = append(x, infoHash[:]...)
	sz := uint64(numPieces)
	set := make([]uint32, 0, k)
	seen := make(map[uint32]struct{}, k)
	for len(set) < k {
		h := sha1.Sum(x)
		x = h[:]
		for j := 0; j < len(h) && len(set) < k; j += 4 {
			index := uint32(uint64(binary.BigEndian.Uint32(h[j:])) % sz)
			if _, ok := seen[index]; !ok {
				seen[index] = struct{}{}
				set = append(set, index)
			}
		}
	}
	return set
}
