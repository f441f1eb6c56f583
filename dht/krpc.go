package dht

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// KRPC error codes (BEP 5).
const (
	errGeneric  = 201
	errServer   = 202
	errProtocol = 203
	errMethod   = 204
)

// maxTIDLen bounds the transaction id a remote node may send us (real clients use 2 to 4 bytes).
const maxTIDLen = 32

// msg is one KRPC message. Fields hold the raw values as they stand in the packet: ids,
// tokens and compact node strings are not checked here (see validate* in server.go), so that
// decoding and encoding are exact inverses for every well-typed message.
type msg struct {
	T  string // transaction id
	Y  string // "q", "r" or "e"
	Q  string // method name, for queries
	V  string // client version, optional
	RO bool   // BEP 43 read-only node
	IP string // BEP 42 "ip": the requester's compact address as the responder sees it, optional
	A  *args  // query arguments (Y == "q")
	R  *ret   // response values (Y == "r")
	E  *Error // error (Y == "e")
}

// args are the arguments of a query ("a").
type args struct {
	ID          string
	Target      string
	InfoHash    string
	Token       string
	Port        int64
	HasPort     bool
	ImpliedPort bool
	// Want is BEP 32's "want" list ("n4", "n6"; other strings are ignored); nil when absent.
	Want []string
}

// ret are the values of a response ("r").
type ret struct {
	ID     string
	Nodes  string
	Nodes6 string
	Token  string
	Values []string
}

// Error is a KRPC error message received from a remote node, or sent to one.
type Error struct {
	Code int64
	Msg  string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("krpc error %d: %s", e.Code, e.Msg) }

// encoder appends bencoded values; dictionary keys must be written in sorted order.
type encoder []byte

func (e *encoder) str(s string) {
	*e = strconv.AppendInt(*e, int64(len(s)), 10)
	*e = append(*e, ':')
	*e = append(*e, s...)
}

func (e *encoder) int(v int64) {
	*e = append(*e, 'i')
	*e = strconv.AppendInt(*e, v, 10)
	*e = append(*e, 'e')
}

func (e *encoder) kv(k, v string) { e.str(k); e.str(v) }

func (e *encoder) list(l []string) {
	*e = append(*e, 'l')
	for _, v := range l {
		e.str(v)
	}
	*e = append(*e, 'e')
}

// encode returns the bencoding of m, with dictionary keys sorted.
func (m *msg) encode() []byte {
	e := make(encoder, 0, 128)
	e = append(e, 'd')
	if m.A != nil {
		e.str("a")
		e = append(e, 'd')
		a := m.A
		e.kv("id", a.ID)
		if a.ImpliedPort {
			e.str("implied_port")
			e.int(1)
		}
		if a.InfoHash != "" {
			e.kv("info_hash", a.InfoHash)
		}
		if a.HasPort {
			e.str("port")
			e.int(a.Port)
		}
		if a.Target != "" {
			e.kv("target", a.Target)
		}
		if a.Token != "" {
			e.kv("token", a.Token)
		}
		if a.Want != nil {
			e.str("want")
			e.list(a.Want)
		}
		e = append(e, 'e')
	}
	if m.E != nil {
		e.str("e")
		e = append(e, 'l')
		e.int(m.E.Code)
		e.str(m.E.Msg)
		e = append(e, 'e')
	}
	if m.IP != "" {
		e.kv("ip", m.IP)
	}
	if m.Q != "" {
		e.kv("q", m.Q)
	}
	if m.R != nil {
		e.str("r")
		e = append(e, 'd')
		r := m.R
		e.kv("id", r.ID)
		if r.Nodes != "" {
			e.kv("nodes", r.Nodes)
		}
		if r.Nodes6 != "" {
			e.kv("nodes6", r.Nodes6)
		}
		if r.Token != "" {
			e.kv("token", r.Token)
		}
		if r.Values != nil {
			e.str("values")
			e.list(r.Values)
		}
		e = append(e, 'e')
	}
	if m.RO {
		e.str("ro")
		e.int(1)
	}
	e.kv("t", m.T)
	if m.V != "" {
		e.kv("v", m.V)
	}
	e.kv("y", m.Y)
	e = append(e, 'e')
	return e
}

var errNotDict = errors.New("not a dictionary")

// decodeMsg parses a KRPC packet. It checks the bencode syntax strictly and the type of every
// key it knows; unknown keys are ignored. It never panics.
func decodeMsg(data []byte) (*msg, error) {
	v, err := bencode.DecodeValue(data)
	if err != nil {
		return nil, fmt.Errorf("krpc: %w", err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("krpc: top-level value: %w", errNotDict)
	}
	m := &msg{}
	if m.T, err = getString(top, "t", true); err != nil {
		return nil, err
	}
	if len(m.T) > maxTIDLen {
		return nil, fmt.Errorf("krpc: transaction id of %d bytes", len(m.T))
	}
	if m.Y, err = getString(top, "y", true); err != nil {
		return nil, err
	}
	if m.V, err = getString(top, "v", false); err != nil {
		return nil, err
	}
	if m.IP, err = getString(top, "ip", false); err != nil {
		return nil, err
	}
	if ro, ok := top["ro"]; ok {
		n, ok := ro.(int64)
		if !ok {
			return nil, fmt.Errorf("krpc: key \"ro\" is %T, want an integer", ro)
		}
		m.RO = n != 0
	}
	switch m.Y {
	case "q":
		if m.Q, err = getString(top, "q", true); err != nil {
			return nil, err
		}
		if m.Q == "" {
			return nil, errors.New("krpc: empty method name")
		}
		d, err := getDict(top, "a")
		if err != nil {
			return nil, err
		}
		a := &args{}
		for _, f := range []struct {
			k string
			p *string
		}{{"id", &a.ID}, {"target", &a.Target}, {"info_hash", &a.InfoHash}, {"token", &a.Token}} {
			if *f.p, err = getString(d, f.k, f.k == "id"); err != nil {
				return nil, err
			}
		}
		if p, ok := d["port"]; ok {
			n, ok := p.(int64)
			if !ok {
				return nil, fmt.Errorf("krpc: key \"port\" is %T, want an integer", p)
			}
			a.Port, a.HasPort = n, true
		}
		if p, ok := d["implied_port"]; ok {
			n, ok := p.(int64)
			if !ok {
				return nil, fmt.Errorf("krpc: key \"implied_port\" is %T, want an integer", p)
			}
			a.ImpliedPort = n != 0
		}
		if a.Want, err = getStringList(d, "want", maxWant); err != nil {
			return nil, err
		}
		m.A = a
	case "r":
		d, err := getDict(top, "r")
		if err != nil {
			return nil, err
		}
		r := &ret{}
		for _, f := range []struct {
			k string
			p *string
		}{{"id", &r.ID}, {"nodes", &r.Nodes}, {"nodes6", &r.Nodes6}, {"token", &r.Token}} {
			if *f.p, err = getString(d, f.k, f.k == "id"); err != nil {
				return nil, err
			}
		}
		if r.Values, err = getStringList(d, "values", 0); err != nil {
			return nil, err
		}
		m.R = r
	case "e":
		x, ok := top["e"]
		if !ok {
			return nil, errors.New("krpc: error message without \"e\"")
		}
		l, ok := x.([]any)
		if !ok || len(l) < 2 {
			return nil, fmt.Errorf("krpc: key \"e\" is not a list of code and message")
		}
		code, ok1 := l[0].(int64)
		text, ok2 := l[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("krpc: key \"e\" holds %T and %T, want an integer and a string", l[0], l[1])
		}
		m.E = &Error{Code: code, Msg: text}
	default:
		return nil, fmt.Errorf("krpc: unknown message type %q", m.Y)
	}
	return m, nil
}

func getString(d map[string]any, k string, required bool) (string, error) {
	x, ok := d[k]
	if !ok {
		if required {
			return "", fmt.Errorf("krpc: missing key %q", k)
		}
		return "", nil
	}
	s, ok := x.(string)
	if !ok {
		return "", fmt.Errorf("krpc: key %q is %T, want a string", k, x)
	}
	return s, nil
}

// maxWant bounds the strings of a "want" list (BEP 32 defines two).
const maxWant = 8

// getStringList returns the list of strings at d[k] (nil when absent). max > 0 bounds its
// length.
func getStringList(d map[string]any, k string, max int) ([]string, error) {
	x, ok := d[k]
	if !ok {
		return nil, nil
	}
	l, ok := x.([]any)
	if !ok {
		return nil, fmt.Errorf("krpc: key %q is %T, want a list", k, x)
	}
	if max > 0 && len(l) > max {
		return nil, fmt.Errorf("krpc: %q of %d elements, at most %d", k, len(l), max)
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("krpc: %q element is %T, want a string", k, e)
		}
		out = append(out, s)
	}
	return out, nil
}

func getDict(d map[string]any, k string) (map[string]any, error) {
	x, ok := d[k]
	if !ok {
		return nil, fmt.Errorf("krpc: missing key %q", k)
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("krpc: key %q is %T, want a dictionary", k, x)
	}
	return m, nil
}

// equalMsg reports whether a and b hold the same message (for tests and fuzzing).
func equalMsg(a, b *msg) bool {
	if a.T != b.T || a.Y != b.Y || a.Q != b.Q || a.V != b.V || a.RO != b.RO || a.IP != b.IP {
		return false
	}
	if (a.A == nil) != (b.A == nil) || (a.R == nil) != (b.R == nil) || (a.E == nil) != (b.E == nil) {
		return false
	}
	if a.A != nil {
		x, y := *a.A, *b.A
		if (x.Want == nil) != (y.Want == nil) || !slices.Equal(x.Want, y.Want) {
			return false
		}
		if x.ID != y.ID || x.Target != y.Target || x.InfoHash != y.InfoHash || x.Token != y.Token ||
			x.Port != y.Port || x.HasPort != y.HasPort || x.ImpliedPort != y.ImpliedPort {
			return false
		}
	}
	if a.E != nil && *a.E != *b.E {
		return false
	}
	if a.R != nil {
		x, y := a.R, b.R
		if x.ID != y.ID || x.Nodes != y.Nodes || x.Nodes6 != y.Nodes6 || x.Token != y.Token ||
			(x.Values == nil) != (y.Values == nil) || !slices.Equal(x.Values, y.Values) {
			return false
		}
	}
	return true
}
