package p2p

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// MaxPexPeers bounds the peers of one ut_pex message per direction: ParsePexMsg keeps the
// first MaxPexPeers distinct added peers (IPv4 first, then IPv6) and as many dropped ones, and
// ignores the rest; Encode refuses more.
const MaxPexPeers = 200

// PEX peer flags (BEP 11), one byte per added peer.
const (
	PexPrefersEncryption byte = 0x01 // prefers encryption ("e" in its extension handshake)
	PexSeed              byte = 0x02 // seed or upload only
	PexUTP               byte = 0x04 // supports uTP
	PexHolepunch         byte = 0x08 // supports ut_holepunch
	PexReachable         byte = 0x10 // we connected out to it: it is reachable
)

const (
	compactV4Len = 6  // 4 address bytes, 2 port bytes
	compactV6Len = 18 // 16 address bytes, 2 port bytes
)

// PexPeer is one peer of a ut_pex message.
type PexPeer struct {
	// Addr is the peer's address; IPv4 addresses are never IPv4-mapped IPv6 ones.
	Addr netip.AddrPort
	// Flags holds the Pex* bits; meaningful for added peers only.
	Flags byte
}

// PexMsg is the payload of a ut_pex message (BEP 11): peers the sender connected to and
// disconnected from since its last message.
type PexMsg struct {
	Added, Dropped []PexPeer
}

// Encode returns the bencoded ut_pex dictionary: "added", "added.f", "added6", "added6.f",
// "dropped" and "dropped6", all present even when empty (as libtorrent sends them). IPv4 and
// IPv4-mapped addresses go to the IPv4 keys; the Flags of dropped peers are not sent. More than MaxPexPeers peers in either list, an
// invalid address, an unspecified address or port 0 is an error.
func (m PexMsg) Encode() ([]byte, error) {
	if len(m.Added) > MaxPexPeers || len(m.Dropped) > MaxPexPeers {
		return nil, fmt.Errorf("p2p: encode ut_pex: %d added and %d dropped peers, at most %d each", len(m.Added), len(m.Dropped), MaxPexPeers)
	}
	var a4, f4, a6, f6, d4, d6 []byte
	for _, p := range m.Added {
		ip, err := pexAddr(p.Addr)
		if err != nil {
			return nil, err
		}
		if ip.Is4() {
			a4 = appendCompact(a4, ip, p.Addr.Port())
			f4 = append(f4, p.Flags)
		} else {
			a6 = appendCompact(a6, ip, p.Addr.Port())
			f6 = append(f6, p.Flags)
		}
	}
	for _, p := range m.Dropped {
		ip, err := pexAddr(p.Addr)
		if err != nil {
			return nil, err
		}
		if ip.Is4() {
			d4 = appendCompact(d4, ip, p.Addr.Port())
		} else {
			d6 = appendCompact(d6, ip, p.Addr.Port())
		}
	}
	b := make([]byte, 0, 64+len(a4)+len(f4)+len(a6)+len(f6)+len(d4)+len(d6))
	b = append(b, 'd')
	for _, kv := range [...]struct {
		k string
		v []byte
	}{{"added", a4}, {"added.f", f4}, {"added6", a6}, {"added6.f", f6}, {"dropped", d4}, {"dropped6", d6}} {
		b = appendBString(b, kv.k)
		b = strconv.AppendInt(b, int64(len(kv.v)), 10)
		b = append(b, ':')
		b = append(b, kv.v...)
	}
	return append(b, 'e'), nil
}

func pexAddr(ap netip.AddrPort) (netip.Addr, error) {
	ip := ap.Addr().Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ap.Port() == 0 {
		return ip, fmt.Errorf("p2p: encode ut_pex: invalid peer address %v", ap)
	}
	return ip, nil
}

func appendBString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendCompact(b []byte, ip netip.Addr, port uint16) []byte {
	if ip.Is4() {
		a := ip.As4()
		b = append(b, a[:]...)
	} else {
		a := ip.As16()
		b = append(b, a[:]...)
	}
	return binary.BigEndian.AppendUint16(b, port)
}

// ParsePexMsg parses a ut_pex payload: one bencoded dictionary of at most MaxExtendedPayload
// bytes. Every key is optional and unknown keys are ignored, but a known key holding a value
// that is not a string, or an address list whose length is not a multiple of 6 (IPv4) or 18
// (IPv6) bytes, is an error. Flags ("added.f", "added6.f") apply to added peers by position:
// missing flags read as 0, extra ones are ignored. Entries with port 0 or an unspecified
// address are skipped, as are duplicates within a list, and IPv4-mapped IPv6 addresses are
// unmapped. At most MaxPexPeers added and MaxPexPeers dropped peers are returned (IPv4 ones
// first); the rest are ignored.
// Errors wrap ErrProtocol. ParsePexMsg never panics.
func ParsePexMsg(b []byte) (PexMsg, error) {
	m, err := parsePexMsg(b)
	if err != nil {
		return PexMsg{}, fmt.Errorf("p2p: parse ut_pex message: %w", err)
	}
	return m, nil
}

func parsePexMsg(b []byte) (PexMsg, error) {
	var m PexMsg
	if len(b) > MaxExtendedPayload {
		return m, protoErr("%d bytes exceeds %d", len(b), MaxExtendedPayload)
	}
	if len(b) == 0 || b[0] != 'd' {
		return m, protoErr("payload is not a bencoded dictionary")
	}
	v, err := bencode.DecodeValue(b)
	if err != nil {
		return m, protoErr("%w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return m, protoErr("payload is not a bencoded dictionary")
	}
	var s [6]string
	for i, k := range [...]string{"added", "added.f", "added6", "added6.f", "dropped", "dropped6"} {
		x, ok := d[k]
		if !ok {
			continue
		}
		if s[i], ok = x.(string); !ok {
			return m, protoErr("%q is not a string", k)
		}
	}
	added, addedF, added6, added6F, dropped, dropped6 := s[0], s[1], s[2], s[3], s[4], s[5]
	for _, l := range [...]struct {
		k    string
		v    string
		step int
	}{{"added", added, compactV4Len}, {"added6", added6, compactV6Len}, {"dropped", dropped, compactV4Len}, {"dropped6", dropped6, compactV6Len}} {
		if len(l.v)%l.step != 0 {
			return m, protoErr("%q of %d bytes is not a multiple of %d", l.k, len(l.v), l.step)
		}
	}
	seen := make(map[netip.AddrPort]struct{})
	m.Added = appendPeers(m.Added, added, addedF, compactV4Len, seen)
	m.Added = appendPeers(m.Added, added6, added6F, compactV6Len, seen)
	clear(seen)
	m.Dropped = appendPeers(m.Dropped, dropped, "", compactV4Len, seen)
	m.Dropped = appendPeers(m.Dropped, dropped6, "", compactV6Len, seen)
	return m, nil
}

// appendPeers appends the peers of the compact list addrs (entries of step bytes, flags by
// position) to dst, skipping unusable and duplicate ones, up to MaxPexPeers in dst.
func appendPeers(dst []PexPeer, addrs, flags string, step int, seen map[netip.AddrPort]struct{}) []PexPeer {
	for i := 0; i+step <= len(addrs) && len(dst) < MaxPexPeers; i += step {
		e := addrs[i : i+step]
		var ip netip.Addr
		if step == compactV4Len {
			ip = netip.AddrFrom4([4]byte([]byte(e[:4])))
		} else {
			ip = netip.AddrFrom16([16]byte([]byte(e[:16]))).Unmap()
		}
		port := binary.BigEndian.Uint16([]byte(e[step-2:]))
		if port == 0 || ip.IsUnspecified() {
			continue
		}
		ap := netip.AddrPortFrom(ip, port)
		if _, dup := seen[ap]; dup {
			continue
		}
		seen[ap] = struct{}{}
		p := PexPeer{Addr: ap}
		if j := i / step; j < len(flags) {
			p.Flags = flags[j]
		}
		dst = append(dst, p)
	}
	return dst
}
