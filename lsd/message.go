package lsd

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gotfs/gotfs/internal/httpu"
)

// MaxMessage bounds an announce, in bytes: BEP 14 asks for announces that fit one packet on
// an Ethernet link (1,500 bytes less the IP and UDP headers). Longer datagrams are dropped
// unread.
const MaxMessage = 1472

// MaxInfoHashes bounds the info hashes of one announce: a longer list (it could not fit
// MaxMessage anyway) is refused whole.
const MaxInfoHashes = 24

// requestLine starts every BEP 14 announce.
const requestLine = "BT-SEARCH * HTTP/1.1"

// Announce is one BEP 14 announce: a peer on the local network says it has the torrents
// InfoHashes and accepts peers on Port (at the address the datagram came from).
type Announce struct {
	Port       uint16
	InfoHashes [][20]byte
	// Cookie lets a client recognise its own announces when they come back; "" when absent.
	Cookie string
}

// Encode writes the announce for the group host (e.g. "239.192.152.143:6771").
func (a *Announce) Encode(host string) []byte {
	var b strings.Builder
	b.WriteString(requestLine + "\r\nHost: " + host + "\r\nPort: " + strconv.Itoa(int(a.Port)) + "\r\n")
	for _, ih := range a.InfoHashes {
		b.WriteString("Infohash: " + hex.EncodeToString(ih[:]) + "\r\n")
	}
	if a.Cookie != "" {
		b.WriteString("cookie: " + a.Cookie + "\r\n")
	}
	// BEP 14 ends the message with two empty lines.
	b.WriteString("\r\n\r\n")
	return []byte(b.String())
}

// ParseAnnounce parses a datagram as a BEP 14 announce. Everything is checked: the size, the
// request line, a port in 1-65535, every Infohash of 40 hex digits and at least one of them.
// Header names are case-insensitive; unknown headers are ignored.
func ParseAnnounce(b []byte) (*Announce, error) {
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("announce of %d bytes: over %d", len(b), MaxMessage)
	}
	m, err := httpu.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	if strings.TrimRight(m.StartLine, " ") != requestLine {
		return nil, fmt.Errorf("announce: request line %q, want %q", truncate(m.StartLine), requestLine)
	}
	port, err := strconv.ParseUint(m.Get("Port"), 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("announce: bad port %q", truncate(m.Get("Port")))
	}
	a := &Announce{Port: uint16(port), Cookie: m.Get("cookie")}
	for _, v := range m.Values("Infohash") {
		if len(a.InfoHashes) == MaxInfoHashes {
			return nil, fmt.Errorf("announce: over %d info hashes", MaxInfoHashes)
		}
		var ih [20]byte
		if len(v) != 40 {
			return nil, fmt.Errorf("announce: info hash %q is not 40 hex digits", truncate(v))
		}
		if _, err := hex.Decode(ih[:], []byte(v)); err != nil {
			return nil, fmt.Errorf("announce: info hash %q: %w", v, err)
		}
		a.InfoHashes = append(a.InfoHashes, ih)
	}
	if len(a.InfoHashes) == 0 {
		return nil, errors.New("announce: no info hash")
	}
	return a, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
