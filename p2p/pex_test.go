package p2p

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestPexMsgEncode(t *testing.T) {
	m := PexMsg{
		Added: []PexPeer{
			{Addr: ap("1.2.3.4:6881"), Flags: PexSeed | PexUTP},
			{Addr: ap("[2001:db8::1]:80"), Flags: PexReachable},
			{Addr: ap("[::ffff:10.0.0.1]:258"), Flags: PexPrefersEncryption},
		},
		Dropped: []PexPeer{{Addr: ap("5.6.7.8:1")}, {Addr: ap("[2001:db8::2]:65535")}},
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := "d5:added12:\x01\x02\x03\x04\x1a\xe1\x0a\x00\x00\x01\x01\x02" +
		"7:added.f2:\x06\x01" +
		"6:added618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50" +
		"8:added6.f1:\x10" +
		"7:dropped6:\x05\x06\x07\x08\x00\x01" +
		"8:dropped618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\xff\xff" + "e"
	if string(b) != want {
		t.Fatalf("Encode =\n%q\nwant\n%q", b, want)
	}
	got, err := ParsePexMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	// IPv4 first, the mapped address unmapped.
	wantMsg := PexMsg{
		Added: []PexPeer{
			{Addr: ap("1.2.3.4:6881"), Flags: PexSeed | PexUTP},
			{Addr: ap("10.0.0.1:258"), Flags: PexPrefersEncryption},
			{Addr: ap("[2001:db8::1]:80"), Flags: PexReachable},
		},
		Dropped: m.Dropped,
	}
	if !reflect.DeepEqual(got, wantMsg) {
		t.Fatalf("Parse = %+v\nwant %+v", got, wantMsg)
	}
	if b, err := (PexMsg{}).Encode(); err != nil || string(b) != "d5:added0:7:added.f0:6:added60:8:added6.f0:7:dropped0:8:dropped60:e" {
		t.Fatalf("empty: %q, %v", b, err)
	}
}

func TestPexMsgRoundTrip(t *testing.T) {
	many := make([]PexPeer, MaxPexPeers)
	for i := range many {
		many[i] = PexPeer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1000+i)), Flags: byte(i)}
	}
	manyDropped := make([]PexPeer, len(many)) // flags are for added peers only
	for i, p := range many {
		manyDropped[i].Addr = p.Addr
	}
	for _, m := range []PexMsg{
		{},
		{Added: []PexPeer{{Addr: ap("127.0.0.1:1")}}},
		{Dropped: []PexPeer{{Addr: ap("[::1]:2")}}},
		{Added: many, Dropped: manyDropped},
		{Added: []PexPeer{{Addr: ap("[fe80::1]:9"), Flags: 0xff}}, Dropped: []PexPeer{{Addr: ap("9.9.9.9:9")}}},
	} {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParsePexMsg(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Added) != len(m.Added) || len(got.Dropped) != len(m.Dropped) ||
			(len(m.Added) > 0 && !reflect.DeepEqual(got.Added, m.Added)) ||
			(len(m.Dropped) > 0 && !reflect.DeepEqual(got.Dropped, m.Dropped)) {
			t.Errorf("%.100q: got %.300v, want %.300v", b, got, m)
		}
	}
}

func TestPexMsgEncodeInvalid(t *testing.T) {
	tooMany := make([]PexPeer, MaxPexPeers+1)
	for i := range tooMany {
		tooMany[i].Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1)
	}
	for _, m := range []PexMsg{
		{Added: tooMany},
		{Dropped: tooMany},
		{Added: []PexPeer{{}}},
		{Added: []PexPeer{{Addr: ap("1.2.3.4:0")}}},
		{Dropped: []PexPeer{{Addr: ap("0.0.0.0:5")}}},
		{Dropped: []PexPeer{{Addr: ap("[::]:5")}}},
	} {
		if b, err := m.Encode(); err == nil {
			t.Errorf("Encode(%d added, %d dropped) = %.60q", len(m.Added), len(m.Dropped), b)
		}
	}
}

// compact4 returns n distinct compact IPv4 entries.
func compact4(n int) string {
	var b []byte
	for i := range n {
		b = binary.BigEndian.AppendUint32(b, 0x0a000000+uint32(i))
		b = binary.BigEndian.AppendUint16(b, 6881)
	}
	return string(b)
}

func bstr(s string) string { return strconv.Itoa(len(s)) + ":" + s }

func TestParsePexMsg(t *testing.T) {
	v6 := "\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x07\x00\x09"
	cases := []struct {
		name         string
		in           string
		added, drops int // -1: error
	}{
		{"empty dict", "de", 0, 0},
		{"only added", "d5:added" + bstr(compact4(3)) + "e", 3, 0},
		{"only dropped6", "d8:dropped6" + bstr(v6+v6[:15]+"\x01\x00\x01") + "e", 0, 2},
		{"unknown keys", "d1:xi5e5:added" + bstr(compact4(1)) + "1:zli1eee", 1, 0},
		{"unsorted keys", "d7:dropped" + bstr(compact4(2)) + "5:added" + bstr(compact4(1)) + "e", 1, 2},
		{"short flags", "d5:added" + bstr(compact4(3)) + "7:added.f1:\x02e", 3, 0},
		{"long flags", "d5:added" + bstr(compact4(1)) + "7:added.f3:\x02\x02\x02e", 1, 0},
		{"duplicates", "d5:added" + bstr(compact4(2)+compact4(2)) + "7:dropped" + bstr(compact4(1)+compact4(1)) + "e", 2, 1},
		{"port 0 and unspecified skipped", "d5:added" + bstr("\x01\x02\x03\x04\x00\x00\x00\x00\x00\x00\x00\x05"+compact4(1)) + "e", 1, 0},
		{"10000 peers bounded", "d5:added" + bstr(compact4(10000)) + "7:dropped" + bstr(compact4(10000)) + "e", MaxPexPeers, MaxPexPeers},
		{"bound across families", "d5:added" + bstr(compact4(MaxPexPeers-1)) + "6:added6" + bstr(v6+v6[:15]+"\x01\x00\x01") + "e", MaxPexPeers, 0},
		{"not bencode", "hello", -1, -1},
		{"empty", "", -1, -1},
		{"list", "l5:addede", -1, -1},
		{"unterminated", "d5:added0:", -1, -1},
		{"trailing data", "d5:added0:ee", -1, -1},
		{"added not a string", "d5:addedi5ee", -1, -1},
		{"added6 a list", "d6:added6lee", -1, -1},
		{"flags not a string", "d7:added.fi1ee", -1, -1},
		{"dropped a dict", "d7:droppeddee", -1, -1},
		{"added 5 bytes", "d5:added5:abcdee", -1, -1},
		{"added 7 bytes", "d5:added" + bstr(compact4(1)+"x") + "e", -1, -1},
		{"added6 6 bytes", "d6:added6" + bstr(compact4(1)) + "e", -1, -1},
		{"dropped 12+1 bytes", "d7:dropped" + bstr(compact4(2)+"x") + "e", -1, -1},
		{"dropped6 17 bytes", "d8:dropped6" + bstr(v6[:17]) + "e", -1, -1},
		{"huge count after bound", "d5:added" + bstr(compact4(10000)+"x") + "e", -1, -1},
	}
	for _, c := range cases {
		m, err := ParsePexMsg([]byte(c.in))
		if c.added < 0 {
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%s: got %d/%d peers, %v; want ErrProtocol", c.name, len(m.Added), len(m.Dropped), err)
			} else if testing.Verbose() {
				t.Logf("%s: %v", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(m.Added) != c.added || len(m.Dropped) != c.drops {
			t.Errorf("%s: %d added, %d dropped; want %d, %d", c.name, len(m.Added), len(m.Dropped), c.added, c.drops)
		}
		for _, p := range append(m.Added, m.Dropped...) {
			if !p.Addr.IsValid() || p.Addr.Port() == 0 || p.Addr.Addr().IsUnspecified() || p.Addr.Addr().Is4In6() {
				t.Errorf("%s: bad peer %v", c.name, p.Addr)
			}
		}
	}
	// Flags by position.
	m, err := ParsePexMsg([]byte("d5:added" + bstr(compact4(3)) + "7:added.f2:\x02\x11e"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Added[0].Flags != 0x02 || m.Added[1].Flags != 0x11 || m.Added[2].Flags != 0 {
		t.Errorf("flags: %+v", m.Added)
	}
	if m.Added[0].Addr != ap("10.0.0.0:6881") || m.Added[2].Addr != ap("10.0.0.2:6881") {
		t.Errorf("addresses: %+v", m.Added)
	}
	if _, err := ParsePexMsg(make([]byte, MaxExtendedPayload+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversize: %v", err)
	}
}

func FuzzPexMsg(f *testing.F) {
	for _, m := range []PexMsg{
		{},
		{Added: []PexPeer{{Addr: ap("1.2.3.4:6881"), Flags: PexSeed}, {Addr: ap("[2001:db8::1]:80"), Flags: PexReachable}},
			Dropped: []PexPeer{{Addr: ap("5.6.7.8:1")}, {Addr: ap("[2001:db8::2]:2")}}},
	} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePexMsg(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error does not wrap ErrProtocol: %v", err)
			}
			return
		}
		if len(m.Added) > MaxPexPeers || len(m.Dropped) > MaxPexPeers {
			t.Fatalf("%d added, %d dropped", len(m.Added), len(m.Dropped))
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", m, err)
		}
		m2, err := ParsePexMsg(b)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", b, err)
		}
		// IPv4-mapped addresses of added6 move to added: compare in a canonical order.
		for _, l := range [][]PexPeer{m.Added, m.Dropped, m2.Added, m2.Dropped} {
			slices.SortFunc(l, func(a, b PexPeer) int { return a.Addr.Compare(b.Addr) })
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v became %+v", m, m2)
		}
	})
}
