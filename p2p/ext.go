package p2p

import (
	"fmt"
	"math"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// ExtHandshakeID is the extended message id of the BEP 10 extension handshake.
const ExtHandshakeID = 0

// ExtHandshake is the BEP 10 extension handshake dictionary.
type ExtHandshake struct {
	// M maps extension names (e.g. "ut_metadata", "ut_pex") to the extended message id
	// the sender wants to receive them under (1..255); 0 disables an extension.
	M map[string]int
	// V is the client name and version ("v").
	V string
	// Reqq is the number of outstanding requests the sender accepts ("reqq").
	Reqq int
	// YourIP is the receiver's address as the sender sees it: 4 or 16 bytes ("yourip").
	YourIP []byte
	// MetadataSize is the size of the info dictionary, for ut_metadata (BEP 9).
	MetadataSize int
	// P is the sender's listening TCP port ("p").
	P int
}

// extWire is the bencode form of ExtHandshake for encoding.
type extWire struct {
	M            map[string]int `bencode:"m"`
	V            string         `bencode:"v,omitempty"`
	Reqq         int            `bencode:"reqq,omitempty"`
	YourIP       string         `bencode:"yourip,omitempty"`
	MetadataSize int            `bencode:"metadata_size,omitempty"`
	P            int            `bencode:"p,omitempty"`
}

// Encode returns the bencoded handshake dictionary (the payload of an extended message
// with id ExtHandshakeID). Zero fields other than M are omitted; M is always present.
func (h ExtHandshake) Encode() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("p2p: encode extension handshake: %w", err)
	}
	w := extWire{M: h.M, V: h.V, Reqq: h.Reqq, YourIP: string(h.YourIP), MetadataSize: h.MetadataSize, P: h.P}
	if w.M == nil {
		w.M = map[string]int{}
	}
	b, err := bencode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("p2p: encode extension handshake: %w", err)
	}
	return b, nil
}

func (h ExtHandshake) validate() error {
	for name, id := range h.M {
		if name == "" {
			return fmt.Errorf("empty extension name")
		}
		if id < 0 || id > math.MaxUint8 {
			return fmt.Errorf("extension %q has id %d, want 0..255", name, id)
		}
	}
	switch {
	case h.Reqq < 0:
		return fmt.Errorf("reqq %d is negative", h.Reqq)
	case h.MetadataSize < 0 || h.MetadataSize > math.MaxInt32:
		return fmt.Errorf("metadata_size %d out of range", h.MetadataSize)
	case h.P < 0 || h.P > math.MaxUint16:
		return fmt.Errorf("port %d out of range", h.P)
	case len(h.YourIP) != 0 && len(h.YourIP) != 4 && len(h.YourIP) != 16:
		return fmt.Errorf("yourip of %d bytes, want 4 or 16", len(h.YourIP))
	}
	return nil
}

// ParseExtHandshake parses a BEP 10 extension handshake payload. The payload must be one
// well-formed bencoded dictionary of at most MaxExtendedPayload bytes, with "m" (if present)
// a dictionary of integer ids. Unknown keys, and known keys holding a value of the wrong
// type, are ignored (as libtorrent does); a value of the right type but out of range (an id
// outside 0..255, a negative reqq or metadata_size, a port above 65535, a yourip of
// neither 4 nor 16 bytes) is an error.
// Errors wrap ErrProtocol. ParseExtHandshake never panics.
func ParseExtHandshake(b []byte) (ExtHandshake, error) {
	h, err := parseExtHandshake(b)
	if err != nil {
		return ExtHandshake{}, fmt.Errorf("p2p: parse extension handshake: %w", err)
	}
	return h, nil
}

func parseExtHandshake(b []byte) (ExtHandshake, error) {
	var h ExtHandshake
	if len(b) > MaxExtendedPayload {
		return h, protoErr("%d bytes exceeds %d", len(b), MaxExtendedPayload)
	}
	if len(b) == 0 || b[0] != 'd' {
		return h, protoErr("payload is not a bencoded dictionary")
	}
	v, err := bencode.DecodeValue(b)
	if err != nil {
		return h, protoErr("%w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return h, protoErr("payload is not a bencoded dictionary")
	}
	if mv, ok := d["m"]; ok {
		m, ok := mv.(map[string]any)
		if !ok {
			return h, protoErr(`"m" is not a dictionary`)
		}
		h.M = make(map[string]int, len(m))
		for name, idv := range m {
			if name == "" {
				continue // names nothing: ignored (and never encoded back)
			}
			id, ok := idv.(int64)
			if !ok {
				return h, protoErr("extension %q has a non-integer id", name)
			}
			if id < 0 || id > math.MaxUint8 {
				return h, protoErr("extension %q has id %d, want 0..255", name, id)
			}
			h.M[name] = int(id)
		}
	}
	if s, ok := d["v"].(string); ok {
		h.V = s
	}
	if s, ok := d["yourip"].(string); ok {
		if len(s) != 4 && len(s) != 16 {
			return h, protoErr("yourip of %d bytes, want 4 or 16", len(s))
		}
		h.YourIP = []byte(s)
	}
	if n, ok := d["reqq"].(int64); ok {
		if n < 0 || n > math.MaxInt32 {
			return h, protoErr("reqq %d out of range", n)
		}
		h.Reqq = int(n)
	}
	if n, ok := d["metadata_size"].(int64); ok {
		if n < 0 || n > math.MaxInt32 {
			return h, protoErr("metadata_size %d out of range", n)
		}
		h.MetadataSize = int(n)
	}
	if n, ok := d["p"].(int64); ok {
		if n < 0 || n > math.MaxUint16 {
			return h, protoErr("port %d out of range", n)
		}
		h.P = int(n)
	}
	return h, nil
}
