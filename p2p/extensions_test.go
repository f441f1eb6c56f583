package p2p

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestOurExtHandshake(t *testing.T) {
	cases := []struct {
		name   string
		h      ExtHandshake
		wire   string
		yourIP netip.Addr
	}{
		{
			name:   "seeding, IPv4 peer",
			h:      OurExtHandshake(31235, 6881, netip.MustParseAddr("127.0.0.2"), 250, "gotfs 0.1"),
			wire:   "d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e1:pi6881e4:reqqi250e1:v9:gotfs 0.16:yourip4:\x7f\x00\x00\x02e",
			yourIP: netip.MustParseAddr("127.0.0.2"),
		},
		{
			name:   "magnet, mapped IPv4 peer, no port",
			h:      OurExtHandshake(0, 0, netip.MustParseAddr("::ffff:10.1.2.3"), DefaultReqq, "gotfs"),
			wire:   "d1:md11:ut_metadatai1e6:ut_pexi2ee4:reqqi250e1:v5:gotfs6:yourip4:\x0a\x01\x02\x03e",
			yourIP: netip.MustParseAddr("10.1.2.3"),
		},
		{
			name:   "IPv6 peer",
			h:      OurExtHandshake(5, 1, netip.MustParseAddr("2001:db8::1"), 0, ""),
			wire:   "d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei5e1:pi1e6:yourip16:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01e",
			yourIP: netip.MustParseAddr("2001:db8::1"),
		},
		{
			name: "no address",
			h:    OurExtHandshake(0, 0, netip.Addr{}, 0, ""),
			wire: "d1:md11:ut_metadatai1e6:ut_pexi2eee",
		},
	}
	for _, c := range cases {
		b, err := c.h.Encode()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(b) != c.wire {
			t.Errorf("%s:\n got %q\nwant %q", c.name, b, c.wire)
		}
		back, err := ParseExtHandshake(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(back, c.h) {
			t.Errorf("%s: parsed %+v, want %+v", c.name, back, c.h)
		}
		if got := back.YourIPAddr(); got != c.yourIP {
			t.Errorf("%s: YourIPAddr = %v, want %v", c.name, got, c.yourIP)
		}
		if id, ok := back.ExtID(ExtMetadataName); !ok || id != LocalMetadataID {
			t.Errorf("%s: ut_metadata id %d %v", c.name, id, ok)
		}
		if id, ok := back.ExtID(ExtPexName); !ok || id != LocalPexID {
			t.Errorf("%s: ut_pex id %d %v", c.name, id, ok)
		}
	}
	if _, err := OurExtHandshake(MaxMetadataSize, 70000, netip.Addr{}, 0, "").Encode(); err == nil {
		t.Error("port 70000 encoded")
	}
}

func TestExtID(t *testing.T) {
	h, err := ParseExtHandshake([]byte("d1:md11:ut_metadatai3e6:ut_pexi0e1:xi255eee"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   uint8
		ok   bool
	}{{"ut_metadata", 3, true}, {"ut_pex", 0, false}, {"x", 255, true}, {"lt_donthave", 0, false}} {
		if id, ok := h.ExtID(c.name); id != c.id || ok != c.ok {
			t.Errorf("ExtID(%q) = %d, %v; want %d, %v", c.name, id, ok, c.id, c.ok)
		}
	}
	if ip := (ExtHandshake{YourIP: []byte{1, 2, 3}}).YourIPAddr(); ip.IsValid() {
		t.Errorf("3-byte yourip gives %v", ip)
	}
}
