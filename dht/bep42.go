package dht

import (
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"net/netip"
)

// BEP 42 (DHT security extension): a node id is tied to the node's external address. The
// first 21 bits of the id must equal those of crc32c(masked address | r<<29 (IPv4) or r<<61
// (IPv6)), where r, 0 to 7, is the low 3 bits of the id's last byte.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	bep42MaskV4 = [4]byte{0x03, 0x0f, 0x3f, 0xff}
	bep42MaskV6 = [8]byte{0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff}
)

// bep42CRC returns the CRC32C of ip's masked octets (the first 4 of an IPv4 address, the
// first 8 of an IPv6 one) with r (0..7) in the top 3 bits.
func bep42CRC(ip netip.Addr, r byte) uint32 {
	ip = ip.Unmap()
	var buf [8]byte
	var b []byte
	if ip.Is4() {
		a := ip.As4()
		for i := range a {
			buf[i] = a[i] & bep42MaskV4[i]
		}
		b = buf[:4]
	} else {
		a := ip.As16()
		for i := range bep42MaskV6 {
			buf[i] = a[i] & bep42MaskV6[i]
		}
		b = buf[:8]
	}
	b[0] |= (r & 7) << 5
	return crc32.Checksum(b, castagnoli)
}

// bep42Exempt reports whether ip is on a local network, where ids are not checked: the BEP's
// 10/8, 172.16/12, 192.168/16, 169.254/16 and 127/8, and their IPv6 counterparts (unique
// local fc00::/7, link-local fe80::/10, loopback ::1).
func bep42Exempt(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast()
}

// nodeIDMatches reports whether id is a valid BEP 42 id for ip: its first 21 bits equal those
// of the CRC of ip with the r of the id's last byte.
func nodeIDMatches(id [20]byte, ip netip.Addr) bool {
	crc := bep42CRC(ip, id[19]&7)
	return binary.BigEndian.Uint32(id[:4])&0xfffff800 == crc&0xfffff800
}

// makeNodeID returns a random node id that is valid for ip under BEP 42.
func makeNodeID(ip netip.Addr) [20]byte {
	var id [20]byte
	rand.Read(id[:])
	crc := bep42CRC(ip, id[19]&7)
	id[0] = byte(crc >> 24)
	id[1] = byte(crc >> 16)
	id[2] = byte(crc>>8)&0xf8 | id[2]&7
	return id
}

// ipVoter elects our external address from what the nodes that answer us say it is (the
// "ip" key of KRPC responses): each voter (a source IP) counts once, with its latest claim;
// only the last maxVoters voters are remembered.
type ipVoter struct {
	minVotes int
	order    []netip.Addr              // voters, oldest first
	claims   map[netip.Addr]netip.Addr // voter -> the address it says we have
}

// maxVoters bounds the voters remembered per address family.
const maxVoters = 64

func newIPVoter(minVotes int) *ipVoter {
	return &ipVoter{minVotes: minVotes, claims: make(map[netip.Addr]netip.Addr)}
}

// vote records that voter says our address is claim. It returns the elected address when
// one has at least minVotes votes and more than half of all votes, else an invalid Addr.
func (v *ipVoter) vote(voter, claim netip.Addr) netip.Addr {
	if _, ok := v.claims[voter]; !ok {
		if len(v.order) == maxVoters {
			delete(v.claims, v.order[0])
			v.order = append(v.order[:0], v.order[1:]...)
		}
		v.order = append(v.order, voter)
	}
	v.claims[voter] = claim
	count := 0
	for _, c := range v.claims {
		if c == claim {
			count++
		}
	}
	if count >= v.minVotes && 2*count > len(v.claims) {
		return claim
	}
	return netip.Addr{}
}
