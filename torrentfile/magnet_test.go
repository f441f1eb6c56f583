package torrentfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseMagnet(t *testing.T) {
	const hexHash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	var want Hash
	copy(want[:], []byte("\xc1\x2f\xe1\xc0\x6b\xba\x25\x4a\x9d\xc9\xf5\x19\xb3\x35\xaa\x7c\x13\x67\xa8\x8a"))
	tests := []struct {
		in      string
		want    *Magnet
		wantErr string
	}{
		{in: "magnet:?xt=urn:btih:" + hexHash, want: &Magnet{InfoHash: want}},
		{in: "magnet:?xt=urn:btih:" + strings.ToUpper(hexHash), want: &Magnet{InfoHash: want}},
		{in: "MAGNET:?XT=URN:BTIH:" + hexHash, want: &Magnet{InfoHash: want}},
		{in: "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&dn=Some+Name%21", want: &Magnet{InfoHash: want, Name: "Some Name!"}},
		{in: "magnet:?xt=urn:btih:yex6dqdlxisuvhoj6um3gnnkpqjwpkek", want: &Magnet{InfoHash: want}},
		{
			in: "magnet:?dn=x&tr=http%3A%2F%2Fa%2Fann&tr=udp://b:1&tr.1=udp://c:2&tr=udp://b:1&ws=http://w/&x.pe=1.2.3.4:5&x.pe=[::1]:6&xt=urn:btih:" + hexHash + "&foo=bar",
			want: &Magnet{InfoHash: want, Name: "x", Trackers: []string{"http://a/ann", "udp://b:1", "udp://c:2"},
				WebSeeds: []string{"http://w/"}, Peers: []string{"1.2.3.4:5", "[::1]:6"}},
		},
		{ // hybrid: btih and btmh
			in:   "magnet:?xt=urn:btih:" + hexHash + "&xt=urn:btmh:1220" + strings.Repeat("ab", 32),
			want: &Magnet{InfoHash: want},
		},
		{in: "http://example.com/?xt=urn:btih:" + hexHash, wantErr: "magnet:"},
		{in: "", wantErr: "magnet:"},
		{in: "magnet:?dn=x", wantErr: "no xt"},
		{in: "magnet:?xt=urn:sha1:" + hexHash, wantErr: "no xt"},
		{in: "magnet:?xt=urn:btih:" + hexHash[:39], wantErr: "39 characters"},
		{in: "magnet:?xt=urn:btih:" + hexHash + "0", wantErr: "41 characters"},
		{in: "magnet:?xt=urn:btih:" + strings.Repeat("g", 40), wantErr: "not hex"},
		{in: "magnet:?xt=urn:btih:" + strings.Repeat("1", 32), wantErr: "not base32"},
		{in: "magnet:?xt=urn:btih:" + hexHash + "&xt=urn:btih:" + strings.Repeat("0", 40), wantErr: "two different"},
		{in: "magnet:?xt=urn:btmh:1220" + strings.Repeat("ab", 32), wantErr: "v2-only"},
		{in: "magnet:?xt=urn:btih:" + hexHash + "&dn=%zz", wantErr: "bad value"},
		{in: "magnet:?xt=urn:btih:" + hexHash + "&x.pe=nope", wantErr: "bad peer"},
	}
	for _, tt := range tests {
		got, err := ParseMagnet(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMagnet(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseMagnet(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseMagnet(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		again, err := ParseMagnet(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q via %q: %+v, %v", tt.in, got.String(), again, err)
		}
	}
	if _, err := ParseMagnet("magnet:?xt=urn:btmh:1220" + strings.Repeat("ab", 32)); !errors.Is(err, ErrMagnetV2Only) {
		t.Errorf("btmh-only error %v is not ErrMagnetV2Only", err)
	}
}

func TestMetainfoMagnet(t *testing.T) {
	mi, err := Load(corpusDir + "/test_torrents/sample.torrent")
	if err != nil {
		t.Fatal(err)
	}
	m := mi.Magnet()
	s := m.String()
	if !strings.HasPrefix(s, "magnet:?xt=urn:btih:"+mi.InfoHash.Hex()+"&dn=sample&tr=") {
		t.Errorf("Magnet().String() = %q", s)
	}
	back, err := ParseMagnet(s)
	if err != nil || back.InfoHash != mi.InfoHash || back.Name != "sample" || len(back.Trackers) != 2 {
		t.Errorf("ParseMagnet(%q) = %+v, %v", s, back, err)
	}
}

func FuzzParseMagnet(f *testing.F) {
	f.Add("magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=a+b&tr=udp://x:1")
	f.Add("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&x.pe=[::1]:1&ws=http://w/")
	f.Add("magnet:?xt=urn:btmh:1220abab")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMagnet(s)
		if err != nil {
			return
		}
		again, err := ParseMagnet(m.String())
		if err != nil {
			t.Fatalf("String() of a parsed link does not parse: %q: %v", m.String(), err)
		}
		if again.InfoHash != m.InfoHash || again.Name != m.Name || len(again.Trackers) != len(m.Trackers) ||
			len(again.WebSeeds) != len(m.WebSeeds) || len(again.Peers) != len(m.Peers) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}
