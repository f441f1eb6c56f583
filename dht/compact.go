package dht

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// compactNodeLen is the length of one IPv4 "compact node info": 20-byte id, 4-byte address,
// 2-byte port.
const compactNodeLen = 26

// nodeInfo is a node's id and UDP address.
type nodeInfo struct {
	ID   [20]byte
	Addr netip.AddrPort
}

// parseCompactNodes decodes a string of IPv4 compact node infos. A length that is not a
// multiple of 26 is an error.
func parseCompactNodes(s string) ([]nodeInfo, error) {
	if len(s)%compactNodeLen != 0 {
		return nil, fmt.Errorf("compact nodes: length %d is not a multiple of %d", len(s), compactNodeLen)
	}
	out := make([]nodeInfo, 0, len(s)/compactNodeLen)
	for i := 0; i < len(s); i += compactNodeLen {
		var n nodeInfo
		copy(n.ID[:], s[i:i+20])
		n.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte([]byte(s[i+20:i+24]))), binary.BigEndian.Uint16([]byte(s[i+24:i+26])))
		out = append(out, n)
	}
	return out, nil
}

// appendCompactNodes appends the compact node info of every IPv4 node in nodes to b.
func appendCompactNodes(b []byte, nodes []nodeInfo) []byte {
	for _, n := range nodes {
		if !n.Addr.Addr().Is4() {
			continue
		}
		b = append(b, n.ID[:]...)
		b = appendCompactAddr(b, n.Addr)
	}
	return b
}

// appendCompactAddr appends the 6-byte (IPv4) or 18-byte (IPv6) compact peer info of a.
func appendCompactAddr(b []byte, a netip.AddrPort) []byte {
	b = append(b, a.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(b, a.Port())
}

// parseCompactAddr decodes a 6-byte (IPv4) or 18-byte (IPv6) compact peer info.
func parseCompactAddr(s string) (netip.AddrPort, bool) {
	switch len(s) {
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte([]byte(s[:4]))), binary.BigEndian.Uint16([]byte(s[4:]))), true
	case 18:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte([]byte(s[:16]))), binary.BigEndian.Uint16([]byte(s[16:]))), true
	}
	return netip.AddrPort{}, false
}

// usableAddr reports whether a node or peer address can be contacted at all: a valid unicast
// address with a non-zero port. Loopback addresses are accepted (unless publicOnly), so that a
// DHT of processes on one host works; publicOnly also refuses private and link-local ones.
func usableAddr(a netip.AddrPort, publicOnly bool) bool {
	ip := a.Addr()
	if !a.IsValid() || a.Port() == 0 || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	if publicOnly && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()) {
		return false
	}
	return true
}
