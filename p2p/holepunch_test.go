package p2p

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

func TestHolepunchWireFormat(t *testing.T) {
	for _, tc := range []struct {
		msg  HolepunchMsg
		wire string
	}{
		{HolepunchMsg{Type: HolepunchRendezvous, Addr: netip.MustParseAddrPort("1.2.3.4:6881")}, "0000" + "01020304" + "1ae1" + "00000000"},
		{HolepunchMsg{Type: HolepunchConnect, Addr: netip.MustParseAddrPort("[2001:db8::1]:51413")}, "0101" + "20010db8000000000000000000000001" + "c8d5" + "00000000"},
		{HolepunchMsg{Type: HolepunchError, Addr: netip.MustParseAddrPort("10.0.0.9:1"), Err: HolepunchNoSupport}, "0200" + "0a000009" + "0001" + "00000003"},
		// An IPv4-mapped address is sent as IPv4.
		{HolepunchMsg{Type: HolepunchConnect, Addr: netip.MustParseAddrPort("[::ffff:1.2.3.4]:80")}, "0100" + "01020304" + "0050" + "00000000"},
	} {
		b, err := tc.msg.Encode()
		if err != nil {
			t.Fatalf("encode %+v: %v", tc.msg, err)
		}
		if got := hex.EncodeToString(b); got != tc.wire {
			t.Errorf("encode %+v = %s, want %s", tc.msg, got, tc.wire)
		}
		m, err := ParseHolepunchMsg(b)
		if err != nil {
			t.Fatalf("parse %x: %v", b, err)
		}
		want := tc.msg
		want.Addr = netip.AddrPortFrom(want.Addr.Addr().Unmap(), want.Addr.Port())
		if m != want {
			t.Errorf("parse %x = %+v, want %+v", b, m, want)
		}
	}
}

func TestHolepunchHostile(t *testing.T) {
	for _, tc := range []struct{ name, wire string }{
		{"empty", ""},
		{"one byte", "00"},
		{"unknown type", "0300010203041ae100000000"},
		{"unknown address type", "0002010203041ae100000000"},
		{"IPv4 too short", "0000010203041ae1000000"},
		{"IPv4 too long", "0000010203041ae10000000000"},
		{"IPv6 with IPv4 length", "0001010203041ae100000000"},
		{"IPv4 with IPv6 length", "000020010db80000000000000000000000011ae100000000"},
	} {
		b, _ := hex.DecodeString(tc.wire)
		if _, err := ParseHolepunchMsg(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", tc.name, err)
		}
	}
	// A non-zero err_code outside an error message is ignored.
	b, _ := hex.DecodeString("0100010203041ae100000004")
	if m, err := ParseHolepunchMsg(b); err != nil || m.Err != 0 {
		t.Errorf("connect with err_code 4: %+v, %v; want it parsed with Err 0", m, err)
	}
	for _, m := range []HolepunchMsg{
		{Type: 3, Addr: netip.MustParseAddrPort("1.2.3.4:1")},
		{Type: HolepunchConnect},
		{Type: HolepunchConnect, Addr: netip.MustParseAddrPort("1.2.3.4:1"), Err: HolepunchNoSelf},
	} {
		if _, err := m.Encode(); err == nil {
			t.Errorf("encode %+v succeeded", m)
		}
	}
}

func FuzzHolepunchMsg(f *testing.F) {
	for _, s := range []string{"0000010203041ae100000000", "010120010db8000000000000000000000001c8d500000000", "02000a000009000100000003"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseHolepunchMsg(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error does not wrap ErrProtocol: %v", err)
			}
			return
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", m, err)
		}
		m2, err := ParseHolepunchMsg(b)
		if err != nil || m2 != m {
			t.Fatalf("round trip: %+v became %+v (%v)", m, m2, err)
		}
		// Only an IPv4-mapped IPv6 address changes size (it is sent as IPv4).
		if len(b) != len(data) && !(data[1] == 1 && m.Addr.Addr().Is4()) {
			t.Fatalf("%d-byte message re-encoded as %d bytes", len(data), len(b))
		}
	})
}
