package dht

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The example messages of BEP 5, as bencoded there.
var bep5Examples = []struct {
	name string
	m    *msg
	enc  string
}{
	{"error", &msg{T: "aa", Y: "e", E: &Error{Code: 201, Msg: "A Generic Error Ocurred"}},
		"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"},
	{"ping query", &msg{T: "aa", Y: "q", Q: "ping", A: &args{ID: "abcdefghij0123456789"}},
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"},
	{"ping response", &msg{T: "aa", Y: "r", R: &ret{ID: "mnopqrstuvwxyz123456"}},
		"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"},
	{"find_node query", &msg{T: "aa", Y: "q", Q: "find_node", A: &args{ID: "abcdefghij0123456789", Target: "mnopqrstuvwxyz123456"}},
		"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe"},
	{"find_node response", &msg{T: "aa", Y: "r", R: &ret{ID: "0123456789abcdefghij", Nodes: "def456..."}},
		"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re"},
	{"get_peers query", &msg{T: "aa", Y: "q", Q: "get_peers", A: &args{ID: "abcdefghij0123456789", InfoHash: "mnopqrstuvwxyz123456"}},
		"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"},
	{"get_peers response with values", &msg{T: "aa", Y: "r", R: &ret{ID: "abcdefghij0123456789", Token: "aoeusnth", Values: []string{"axje.u", "idhtnm"}}},
		"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"},
	{"get_peers response with nodes", &msg{T: "aa", Y: "r", R: &ret{ID: "abcdefghij0123456789", Token: "aoeusnth", Nodes: "def456..."}},
		"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re"},
	// BEP 5's dictionary shows "implied_port": 1 but its bencoded form leaves it out; this is
	// the bencoded form (the next case covers implied_port).
	{"announce_peer query", &msg{T: "aa", Y: "q", Q: "announce_peer", A: &args{ID: "abcdefghij0123456789", InfoHash: "mnopqrstuvwxyz123456", Port: 6881, HasPort: true, Token: "aoeusnth"}},
		"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"},
	{"announce_peer query with implied_port", &msg{T: "aa", Y: "q", Q: "announce_peer", A: &args{ID: "abcdefghij0123456789", InfoHash: "mnopqrstuvwxyz123456", Port: 6881, HasPort: true, ImpliedPort: true, Token: "aoeusnth"}},
		"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"},
	{"announce_peer response", &msg{T: "aa", Y: "r", R: &ret{ID: "mnopqrstuvwxyz123456"}},
		"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"},
	{"optional keys", &msg{T: "xy", Y: "r", V: "GT\x00\x01", RO: true, IP: "\x7f\x00\x00\x01\x1a\xe1", R: &ret{ID: "mnopqrstuvwxyz123456", Values: []string{}}},
		"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:mnopqrstuvwxyz1234566:valueslee2:roi1e1:t2:xy1:v4:GT\x00\x011:y1:re"},
}

func TestKRPCKnownAnswers(t *testing.T) {
	for _, tc := range bep5Examples {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.m.encode()); got != tc.enc {
				t.Errorf("encode:\n got %q\nwant %q", got, tc.enc)
			}
			m, err := decodeMsg([]byte(tc.enc))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !equalMsg(m, tc.m) {
				t.Errorf("decode: got %+v, want %+v", m, tc.m)
			}
		})
	}
}

func TestKRPCDecodeErrors(t *testing.T) {
	for _, in := range []string{
		"", "x", "le", "i5e", "d1:t2:aae", // no y
		"d1:t2:aa1:y1:xe",                      // unknown type
		"d1:ti5e1:y1:qe",                       // t is not a string
		"d1:t2:aa1:y1:qe",                      // query without q
		"d1:q4:ping1:t2:aa1:y1:qe",             // query without a
		"d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe", // id not a string
		"d1:ad2:id20:abcdefghij01234567894:port2:xxe1:q13:announce_peer1:t2:aa1:y1:qe", // port not an int
		"d1:rle1:t2:aa1:y1:re", // r not a dict
		"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesi1ee1:t2:aa1:y1:re",   // values not a list
		"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesli1eee1:t2:aa1:y1:re", // value not a string
		"d1:eli201ee1:t2:aa1:y1:ee",                                    // e without message
		"d1:el3:abc3:abce1:t2:aa1:y1:ee",                               // e code not an int
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qetrailing",
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:t2:bb1:y1:qe", // duplicate key
		"d1:t40:0123456789012345678901234567890123456789" + "1:y1:re",     // tid too long
		strings.Repeat("l", 100) + strings.Repeat("e", 100),
	} {
		if m, err := decodeMsg([]byte(in)); err == nil {
			t.Errorf("decodeMsg(%q) = %+v, want an error", in, m)
		}
	}
}

func TestCompactNodes(t *testing.T) {
	nodes := []nodeInfo{
		{ID: [20]byte{1, 2, 3}, Addr: netip.MustParseAddrPort("127.0.0.1:6881")},
		{ID: [20]byte{19: 0xff}, Addr: netip.MustParseAddrPort("10.1.2.3:65535")},
		{ID: [20]byte{7}, Addr: netip.MustParseAddrPort("[::1]:80")}, // skipped: IPv4 only
	}
	b := appendCompactNodes(nil, nodes)
	if len(b) != 52 {
		t.Fatalf("encoded %d bytes, want 52", len(b))
	}
	want := append([]byte{1, 2, 3}, make([]byte, 17)...)
	want = append(want, 127, 0, 0, 1, 0x1a, 0xe1)
	if !bytes.Equal(b[:26], want) {
		t.Errorf("first node = %x, want %x", b[:26], want)
	}
	got, err := parseCompactNodes(string(b))
	if err != nil || len(got) != 2 || got[0] != nodes[0] || got[1] != nodes[1] {
		t.Errorf("parse = %v, %v", got, err)
	}
	for _, n := range []int{1, 25, 27, 51} {
		if _, err := parseCompactNodes(string(b[:n])); err == nil {
			t.Errorf("%d bytes of nodes accepted", n)
		}
	}
	if p, ok := parseCompactAddr("axje.u"); !ok || p != netip.AddrPortFrom(netip.AddrFrom4([4]byte{'a', 'x', 'j', 'e'}), uint16('.')<<8|'u') {
		t.Errorf("parseCompactAddr = %v %v", p, ok)
	}
	if _, ok := parseCompactAddr("12345"); ok {
		t.Error("5-byte peer accepted")
	}
}

func TestErrorType(t *testing.T) {
	var e error = &Error{Code: 203, Msg: "bad token"}
	var ke *Error
	if !errors.As(e, &ke) || ke.Code != 203 || e.Error() != "krpc error 203: bad token" {
		t.Errorf("Error = %v", e)
	}
}
