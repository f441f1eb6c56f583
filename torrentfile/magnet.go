package torrentfile

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Magnet is a parsed magnet link (BEP 9).
type Magnet struct {
	// InfoHash is the v1 info hash from xt=urn:btih:.
	InfoHash Hash
	// Name is the display name (dn), possibly empty.
	Name string
	// Trackers lists the tr URLs in order, without duplicates.
	Trackers []string
	// WebSeeds lists the ws URLs (BEP 19).
	WebSeeds []string
	// Peers lists the x.pe peer addresses as "host:port".
	Peers []string
}

// ErrMagnetV2Only is returned for magnet links that carry only a v2 (btmh) info hash.
var ErrMagnetV2Only = errors.New("magnet: v2-only (btmh) magnet links are not supported yet")

// maxMagnetLength bounds the size of a magnet link ParseMagnet accepts.
const maxMagnetLength = 64 << 10

// ParseMagnet parses a magnet link. It needs an xt=urn:btih: parameter holding a 40-digit hex
// or 32-character base32 info hash; dn, tr, ws and x.pe are read when present (tr, ws and x.pe
// may repeat, and numbered forms such as tr.1 are accepted). Unknown parameters are ignored.
func ParseMagnet(s string) (*Magnet, error) {
	if len(s) > maxMagnetLength {
		return nil, fmt.Errorf("magnet: link is longer than %d bytes", maxMagnetLength)
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(scheme, "magnet") {
		return nil, errors.New(`magnet: not a magnet link (it must start with "magnet:?")`)
	}
	rest = strings.TrimPrefix(rest, "?")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	m := &Magnet{}
	var haveHash, haveV2 bool
	seen := map[string]bool{}
	for _, kv := range strings.Split(rest, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("magnet: bad parameter name %q: %w", k, err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("magnet: bad value for %s: %w", key, err)
		}
		base, _, _ := strings.Cut(strings.ToLower(key), ".")
		if strings.ToLower(key) == "x.pe" {
			base = "x.pe"
		}
		switch base {
		case "xt":
			lv := strings.ToLower(val)
			switch {
			case strings.HasPrefix(lv, "urn:btih:"):
				h, err := parseBTIH(val[len("urn:btih:"):])
				if err != nil {
					return nil, err
				}
				if haveHash && h != m.InfoHash {
					return nil, errors.New("magnet: two different btih info hashes")
				}
				m.InfoHash, haveHash = h, true
			case strings.HasPrefix(lv, "urn:btmh:"):
				haveV2 = true
			}
		case "dn":
			m.Name = val
		case "tr", "ws", "x.pe":
			val = strings.TrimSpace(val)
			if val == "" || seen[base+" "+val] {
				continue
			}
			seen[base+" "+val] = true
			switch base {
			case "tr":
				m.Trackers = append(m.Trackers, val)
			case "ws":
				m.WebSeeds = append(m.WebSeeds, val)
			default:
				if _, _, err := net.SplitHostPort(val); err != nil {
					return nil, fmt.Errorf("magnet: bad peer address %q: %w", val, err)
				}
				m.Peers = append(m.Peers, val)
			}
		}
	}
	switch {
	case haveHash:
		return m, nil
	case haveV2:
		return nil, ErrMagnetV2Only
	default:
		return nil, errors.New("magnet: no xt=urn:btih: info hash")
	}
}

func parseBTIH(s string) (Hash, error) {
	var h Hash
	switch len(s) {
	case 2 * HashSize:
		if _, err := hex.Decode(h[:], []byte(s)); err != nil {
			return Hash{}, fmt.Errorf("magnet: info hash %q is not hex", s)
		}
	case 32:
		b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s))
		if err != nil || len(b) != HashSize {
			return Hash{}, fmt.Errorf("magnet: info hash %q is not base32", s)
		}
		copy(h[:], b)
	default:
		return Hash{}, fmt.Errorf("magnet: info hash %q has %d characters, want 40 (hex) or 32 (base32)", s, len(s))
	}
	return h, nil
}

// String formats the magnet link: xt with a lowercase hex info hash, then dn, tr, ws and x.pe.
func (m *Magnet) String() string {
	var b strings.Builder
	b.WriteString("magnet:?xt=urn:btih:")
	b.WriteString(hex.EncodeToString(m.InfoHash[:]))
	add := func(k, v string) {
		b.WriteString("&" + k + "=")
		b.WriteString(url.QueryEscape(v))
	}
	if m.Name != "" {
		add("dn", m.Name)
	}
	for _, t := range m.Trackers {
		add("tr", t)
	}
	for _, w := range m.WebSeeds {
		add("ws", w)
	}
	for _, p := range m.Peers {
		add("x.pe", p)
	}
	return b.String()
}

// Magnet returns a magnet link for the torrent: info hash, name, every tracker (tiers
// flattened in order) and web seeds.
func (mi *Metainfo) Magnet() *Magnet {
	m := &Magnet{InfoHash: mi.InfoHash, Name: mi.Info.Name}
	for _, tier := range mi.Trackers {
		m.Trackers = append(m.Trackers, tier...)
	}
	m.WebSeeds = append(m.WebSeeds, mi.WebSeeds...)
	return m
}

// Hex returns the hash in lowercase hex. (Hash has no String method on purpose, so that %x
// keeps printing its bytes.)
func (h Hash) Hex() string { return hex.EncodeToString(h[:]) }
