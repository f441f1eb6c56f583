package p2p

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestExtHandshakeRoundTrip(t *testing.T) {
	cases := []ExtHandshake{
		{M: map[string]int{}},
		{M: map[string]int{"ut_metadata": 2, "ut_pex": 1, "lt_donthave": 0}, V: "gotfs 0.1", Reqq: 250,
			YourIP: []byte{127, 0, 0, 1}, MetadataSize: 31337, P: 6881},
		{M: map[string]int{"x": 255}, YourIP: make([]byte, 16)},
	}
	for _, h := range cases {
		b, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseExtHandshake(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(got, h) {
			t.Fatalf("%s: got %+v, want %+v", b, got, h)
		}
	}
	b, err := ExtHandshake{M: map[string]int{"ut_pex": 1}, V: "v", P: 1}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := "d1:md6:ut_pexi1ee1:pi1e1:v1:ve"; string(b) != want {
		t.Fatalf("Encode = %s, want %s", b, want)
	}
	if b, err := (ExtHandshake{}).Encode(); err != nil || string(b) != "d1:mdee" {
		t.Fatalf("empty Encode = %s, %v", b, err)
	}
}

func TestExtHandshakeEncodeInvalid(t *testing.T) {
	for _, h := range []ExtHandshake{
		{M: map[string]int{"a": 256}}, {M: map[string]int{"a": -1}}, {M: map[string]int{"": 1}},
		{Reqq: -1}, {MetadataSize: -1}, {P: 70000}, {YourIP: []byte{1, 2, 3}},
	} {
		if _, err := h.Encode(); err == nil {
			t.Errorf("Encode(%+v) succeeded", h)
		}
	}
}

func TestParseExtHandshake(t *testing.T) {
	cases := []struct {
		in   string
		want *ExtHandshake // nil = error
	}{
		{"de", &ExtHandshake{}},
		{"d1:md11:ut_metadatai3eee", &ExtHandshake{M: map[string]int{"ut_metadata": 3}}},
		// real libtorrent handshake shape, with unknown keys
		{"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5000e4:reqqi500e11:upload_onlyi1e1:v17:qBittorrent/4.5.26:yourip4:\x7f\x00\x00\x01e",
			&ExtHandshake{M: map[string]int{"lt_donthave": 7, "share_mode": 8, "upload_only": 3, "ut_holepunch": 4, "ut_metadata": 2, "ut_pex": 1},
				MetadataSize: 5000, Reqq: 500, V: "qBittorrent/4.5.2", YourIP: []byte{127, 0, 0, 1}}},
		// wrong types of optional keys are ignored
		{"d1:pli1ee4:reqq1:x1:vi5ee", &ExtHandshake{}},
		{"", nil},
		{"le", nil},
		{"i5e", nil},
		{"d1:mi1ee", nil},               // m not a dict
		{"d1:md1:a1:xee", nil},          // non-integer id
		{"d1:md1:ai256eee", nil},        // id out of range
		{"d1:md1:ai-1eee", nil},         // negative id
		{"d13:metadata_sizei-1ee", nil}, // negative size
		{"d13:metadata_sizei99999999999ee", nil},
		{"d4:reqqi-5ee", nil},
		{"d1:pi65536ee", nil},
		{"d6:yourip3:abce", nil},
		{"d1:md", nil},                     // truncated
		{"d1:md1:ai1eeeXX", nil},           // trailing garbage
		{"d1:m1:a1:m1:be", nil},            // duplicate key
		{"d99999999999:", nil},             // huge string length
		{"d1:xi01ee", nil},                 // bad integer
		{strings.Repeat("l", 100000), nil}, // deep nesting
		{"d1:x" + strings.Repeat("l", 10000) + strings.Repeat("e", 10000) + "e", nil},
	}
	for _, c := range cases {
		got, err := ParseExtHandshake([]byte(c.in))
		name := c.in
		if len(name) > 40 {
			name = name[:40]
		}
		if c.want == nil {
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%q: got %+v, %v; want ErrProtocol", name, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, *c.want) {
			t.Errorf("%q: got %+v, want %+v", name, got, *c.want)
		}
	}
	if _, err := ParseExtHandshake(make([]byte, MaxExtendedPayload+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversize: %v", err)
	}
}
