package dht

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Lengths of one "compact node info": 20-byte id, address (4 or 16 bytes), 2-byte port.
const (
	compactNodeLen  = 26 // IPv4, in "nodes"
	compactNode6Len = 38 // IPv6, in "nodes6" (BEP 32)
)

// nodeInfo is a node's id and UDP address.
type nodeInfo struct {
	ID   [20]byte
	Addr netip.AddrPort
}

// parseCompactNodes decodes a string of IPv4 compact node infos ("nodes"). A length that is
// not a multiple of 26 is an error.
func parseCompactNodes(s string) ([]nodeInfo, error) { return parseNodes(s, false) }

// parseCompactNodes6 decodes a string of IPv6 compact node infos ("nodes6"). A length that is
// not a multiple of 38 is an error. The addresses are returned as they stand: what may be
// contacted is for nodeAddrOK to say.
func parseCompactNodes6(s string) ([]nodeInfo, error) { return parseNodes(s, true) }

func parseNodes(s string, v6 bool) ([]nodeInfo, error) {
	size, alen := compactNodeLen, 4
	if v6 {
		size, alen = compactNode6Len, 16
	}
	if len(s)%size != 0 {
		return nil, fmt.Errorf("compact nodes: length %d is not a multiple of %d", len(s), size)
	}
	out := make([]nodeInfo, 0, len(s)/size)
	for i := 0; i < len(s); i += size {
		var n nodeInfo
		copy(n.ID[:], s[i:i+20])
		ip, _ := netip.AddrFromSlice([]byte(s[i+20 : i+20+alen]))
		n.Addr = netip.AddrPortFrom(ip, binary.BigEndian.Uint16([]byte(s[i+20+alen:i+size])))
		out = append(out, n)
	}
	return out, nil
}

// appendCompactNodes appends the compact node info of every IPv4 node in nodes to b.
func appendCompactNodes(b []byte, nodes []nodeInfo) []byte { return appendNodes(b, nodes, false) }

// appendCompactNodes6 appends the compact node info of every IPv6 node in nodes to b.
func appendCompactNodes6(b []byte, nodes []nodeInfo) []byte { return appendNodes(b, nodes, true) }

func appendNodes(b []byte, nodes []nodeInfo, v6 bool) []byte {
	for _, n := range nodes {
		if ip := n.Addr.Addr(); ip.Is4() == v6 || ip.Is4In6() {
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

// parseCompactAddr decodes a 6-byte (IPv4) or 18-byte (IPv6) compact peer info. An IPv4-mapped
// IPv6 address is returned as IPv4.
func parseCompactAddr(s string) (netip.AddrPort, bool) {
	switch len(s) {
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte([]byte(s[:4]))), binary.BigEndian.Uint16([]byte(s[4:]))), true
	case 18:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte([]byte(s[:16]))).Unmap(), binary.BigEndian.Uint16([]byte(s[16:]))), true
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

// locality ranks how far an address reaches: loopback < private (and link-local) < public.
func locality(ip netip.Addr) int {
	switch {
	case ip.IsLoopback():
		return 0
	case ip.IsPrivate() || ip.IsLinkLocalUnicast():
		return 1
	}
	return 2
}

// nodeAddrOK reports whether a node address that from gave us (in "nodes" or "nodes6") may be
// contacted by the DHT of family v6. Refused: the other family (an IPv4-mapped or
// IPv4-compatible address in nodes6 included), IPv6 link-local addresses (meaningless
// without the zone a compact address cannot carry), anything usableAddr refuses, and an
// address more local than the node that sent it (a public node naming 127.0.0.1 or a LAN
// address would make us probe our own host or network).
func nodeAddrOK(a, from netip.AddrPort, v6, publicOnly bool) bool {
	ip := a.Addr()
	if v6 {
		if !ip.Is6() || ip.Is4In6() || ip.IsLinkLocalUnicast() || ip.Zone() != "" || isIPv4Compatible(ip) {
			return false
		}
	} else if !ip.Is4() {
		return false
	}
	return usableAddr(a, publicOnly) && locality(ip) >= locality(from.Addr())
}

// isIPv4Compatible reports whether ip is in the deprecated ::/96 (other than :: and ::1).
func isIPv4Compatible(ip netip.Addr) bool {
	b := ip.As16()
	for _, x := range b[:12] {
		if x != 0 {
			return false
		}
	}
	return !ip.IsUnspecified() && !ip.IsLoopback()
}
