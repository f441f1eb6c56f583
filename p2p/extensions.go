package p2p

import "net/netip"

// Names of the BEP 10 extensions we speak, as they appear in the "m" dictionary.
const (
	ExtMetadataName = "ut_metadata" // BEP 9
	ExtPexName      = "ut_pex"      // BEP 11
)

// Our local extended message ids: the ids peers send our extensions under, as announced by
// OurExtHandshake. A received extended message with one of these ids is of that extension.
const (
	LocalMetadataID uint8 = 1
	LocalPexID      uint8 = 2
	// LocalHolepunchID is ut_holepunch's (BEP 55); OurExtHandshake leaves it out: the engine
	// adds it when it speaks uTP.
	LocalHolepunchID uint8 = 3
)

// DefaultReqq is a reqq worth announcing when the engine has no better number: how many
// requests we queue from one peer.
const DefaultReqq = 250

// OurExtHandshake returns our extension handshake: "m" with ut_metadata and ut_pex under our
// local ids, "metadata_size" (omitted when 0: we do not have the metadata yet), "p" our
// listening port (omitted when 0), "v" our client name and version, "reqq" and "yourip" (the
// peer's address as we see it: 4 bytes for IPv4 and IPv4-mapped addresses, 16 for IPv6,
// omitted when invalid). Out-of-range numbers make the handshake's Encode fail.
func OurExtHandshake(metadataSize, listenPort int, yourIP netip.Addr, reqq int, version string) ExtHandshake {
	h := ExtHandshake{
		M:            map[string]int{ExtMetadataName: int(LocalMetadataID), ExtPexName: int(LocalPexID)},
		V:            version,
		Reqq:         reqq,
		MetadataSize: metadataSize,
		P:            listenPort,
	}
	if yourIP.IsValid() {
		if ip := yourIP.Unmap(); ip.Is4() {
			a := ip.As4()
			h.YourIP = a[:]
		} else {
			a := ip.As16()
			h.YourIP = a[:]
		}
	}
	return h
}

// ExtID returns the extended message id the sender of h wants to receive the extension name
// under, and whether it supports it at all (an id of 0 disables an extension, BEP 10).
func (h ExtHandshake) ExtID(name string) (uint8, bool) {
	id, ok := h.M[name]
	if !ok || id <= 0 || id > 255 {
		return 0, false
	}
	return uint8(id), true
}

// YourIPAddr returns the "yourip" of h as an address (invalid when absent).
func (h ExtHandshake) YourIPAddr() netip.Addr {
	ip, ok := netip.AddrFromSlice(h.YourIP)
	if !ok {
		return netip.Addr{}
	}
	return ip.Unmap()
}
