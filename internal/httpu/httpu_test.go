package httpu

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	msg := "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n" +
		"Infohash: aa\r\ninfohash:  bb \r\n\r\n\r\n"
	m, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if m.StartLine != "BT-SEARCH * HTTP/1.1" {
		t.Errorf("start line %q", m.StartLine)
	}
	if got := m.Get("PORT"); got != "6881" {
		t.Errorf("Port %q", got)
	}
	if got := m.Values("InfoHash"); len(got) != 2 || got[0] != "aa" || got[1] != "bb" {
		t.Errorf("Infohash values %q", got)
	}
	if m.Get("cookie") != "" {
		t.Error("absent header has a value")
	}
	// Bare LF line ends, and no empty line at the end.
	m, err = Parse([]byte("HTTP/1.1 200 OK\nLOCATION: http://10.0.0.1:5000/rootDesc.xml\n"))
	if err != nil || m.Get("location") != "http://10.0.0.1:5000/rootDesc.xml" {
		t.Fatalf("LF message: %v %+v", err, m)
	}
}

func TestParseRejects(t *testing.T) {
	for name, msg := range map[string]string{
		"empty":          "",
		"no start line":  "\r\nHost: x\r\n\r\n",
		"no colon":       "A\r\nHost x\r\n\r\n",
		"space in name":  "A\r\nHo st: x\r\n\r\n",
		"empty name":     "A\r\n: x\r\n\r\n",
		"control value":  "A\r\nHost: x\x00y\r\n\r\n",
		"control start":  "A\x01\r\n\r\n",
		"non-ascii name": "A\r\nH\xffst: x\r\n\r\n",
		"too many":       "A\r\n" + strings.Repeat("X: y\r\n", MaxHeaders+1) + "\r\n",
		"too long":       "A\r\nX: " + strings.Repeat("y", MaxMessage) + "\r\n\r\n",
		"no line end":    "A", // a start line alone, with no line end, is no message
	} {
		if _, err := Parse([]byte(msg)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse(make([]byte, MaxMessage+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v, want ErrTooLarge", err)
	}
}

// FuzzParse checks that any datagram parses or fails cleanly, within the bounds, and that
// what parses has only printable, trimmed values.
func FuzzParse(f *testing.F) {
	f.Add([]byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://10.0.0.1:5000/rootDesc.xml\r\n\r\n"))
	f.Add([]byte("A\nB:\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if len(m.Headers) > MaxHeaders {
			t.Fatalf("%d headers", len(m.Headers))
		}
		for _, h := range m.Headers {
			if strings.TrimSpace(h.Value) != strings.Trim(h.Value, "\t ") || strings.ContainsAny(h.Value, "\r\n\x00") {
				t.Fatalf("value %q", h.Value)
			}
			if h.Name == "" || strings.ContainsAny(h.Name, " :\r\n") {
				t.Fatalf("name %q", h.Name)
			}
		}
	})
}
