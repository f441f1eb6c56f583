// Package httpu parses HTTP-over-UDP messages (HTTPU): the one-datagram requests and answers
// of BEP 14 Local Service Discovery and of SSDP (UPnP discovery). A message is a start line
// and header lines, each ended by CRLF (a bare LF is tolerated), then an empty line; any body
// is ignored. The input is hostile: its size and header count are bounded and nothing is
// allocated beyond the message itself.
package httpu

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// MaxMessage bounds the size of a message Parse accepts, in bytes.
const MaxMessage = 4096

// MaxHeaders bounds the number of header lines Parse accepts.
const MaxHeaders = 64

// Header is one header line. Name keeps its case; compare it with strings.EqualFold.
type Header struct {
	Name, Value string
}

// Message is a parsed HTTPU message.
type Message struct {
	// StartLine is the first line (a request line or a status line), without its line end.
	StartLine string
	// Headers are the header lines in order; a name may repeat.
	Headers []Header
}

// Get returns the value of the first header with the given name (case-insensitive), or "".
func (m *Message) Get(name string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Values returns the values of every header with the given name (case-insensitive), in order.
func (m *Message) Values(name string) []string {
	var out []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			out = append(out, h.Value)
		}
	}
	return out
}

// ErrTooLarge is returned for a message longer than MaxMessage or with more than MaxHeaders
// header lines.
var ErrTooLarge = errors.New("message too large")

// Parse parses one datagram. Header values are trimmed of spaces and tabs. A message with no
// empty line after its headers is accepted when the datagram ends right after a header line
// (some devices leave it out); a line that is not "Name: value", a name with spaces or
// control bytes, or a control byte in a value is an error.
func Parse(b []byte) (*Message, error) {
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	line, rest, ok := cutLine(b)
	if !ok || len(line) == 0 {
		return nil, errors.New("no start line")
	}
	if !printable(line) {
		return nil, errors.New("start line has control bytes")
	}
	m := &Message{StartLine: string(line)}
	for len(rest) > 0 {
		line, rest, ok = cutLine(rest)
		if len(line) == 0 {
			if ok {
				return m, nil // the empty line that ends the headers
			}
			break
		}
		if len(m.Headers) == MaxHeaders {
			return nil, fmt.Errorf("%w: over %d headers", ErrTooLarge, MaxHeaders)
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !validName(name) {
			return nil, fmt.Errorf("bad header line %q", truncate(line))
		}
		value = bytes.Trim(value, " \t")
		if !printable(value) {
			return nil, fmt.Errorf("header %s: control bytes in value", name)
		}
		m.Headers = append(m.Headers, Header{Name: string(name), Value: string(value)})
	}
	return m, nil
}

// cutLine splits b at its first line end (CRLF or LF). ok is false when b has no line end.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil, false
	}
	line = b[:i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, b[i+1:], true
}

// validName reports whether b is a header name: at least one byte, none of them a space, a
// control byte or a non-ASCII byte.
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// printable reports whether b holds no control bytes other than tab.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// truncate shortens a line quoted in an error.
func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
