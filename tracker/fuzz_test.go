package tracker

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzParseHTTPResponse feeds arbitrary bytes to the HTTP announce and scrape parsers: they
// must never panic, keep peers bounded and valid, and reject what is not bencode.
func FuzzParseHTTPResponse(f *testing.F) {
	for _, s := range []string{
		"d8:intervali1800e12:min intervali900e8:completei1e10:incompletei2e5:peers6:\x7f\x00\x00\x01\x1a\xe1e",
		"d5:peersld2:ip9:127.0.0.14:porti80eed2:ip3:::14:porti81eeee",
		"d6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e",
		"d14:failure reason6:bannede",
		"d15:warning message4:slow10:tracker id2:ide",
		"d5:filesd20:AAAAAAAAAAAAAAAAAAAAd8:completei1e10:downloadedi2e10:incompletei3eeee",
		"<html></html>",
		"d5:peers",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, _, err := parseHTTPAnnounce(body, 50)
		if err == nil {
			if len(resp.Peers) > 50 {
				t.Fatalf("%d peers", len(resp.Peers))
			}
			seen := make(map[string]bool)
			for _, p := range resp.Peers {
				if !p.IsValid() || p.Port() == 0 || p.Addr().IsUnspecified() || p.Addr().Is4In6() || seen[p.String()] {
					t.Fatalf("bad or duplicate peer %v", p)
				}
				seen[p.String()] = true
			}
			if resp.Interval < 0 || resp.MinInterval < 0 || resp.Seeders < -1 || resp.Leechers < -1 {
				t.Fatalf("bad numbers %+v", resp)
			}
		}
		res, err := parseHTTPScrape(body)
		if err == nil && len(res) > len(body)/20 {
			t.Fatalf("%d scrape entries from %d bytes", len(res), len(body))
		}
		if len(body) > 0 && body[0] != 'd' && (err == nil) {
			t.Fatal("non-dictionary accepted")
		}
	})
}

// FuzzParseUDPResponse feeds arbitrary datagrams to the UDP reply parser.
func FuzzParseUDPResponse(f *testing.F) {
	hdr := func(action, tx uint32, rest ...byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, action)
		b = binary.BigEndian.AppendUint32(b, tx)
		return append(b, rest...)
	}
	f.Add(hdr(0, 1, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add(hdr(1, 1, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2, 127, 0, 0, 1, 0x1a, 0xe1))
	f.Add(hdr(1, 1))
	f.Add(hdr(2, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3))
	f.Add(hdr(3, 1, 'n', 'o'))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, err := parseUDPReply(pkt)
		if err != nil {
			return
		}
		if len(pkt) < 8 {
			t.Fatal("short packet accepted")
		}
		switch r.action {
		case actionAnnounce:
			for _, v6 := range []bool{false, true} {
				resp := announceFromUDP(r, v6, 20)
				if len(resp.Peers) > 20 || resp.Interval < 0 {
					t.Fatalf("bad response %+v", resp)
				}
			}
		case actionScrape:
			if len(r.scrape) > udpMaxScrapeHashes || len(r.scrape)*12 > len(pkt) {
				t.Fatalf("%d scrape entries", len(r.scrape))
			}
		case actionError:
			if len(r.message) > 3*udpMaxMessageLen || bytes.ContainsAny([]byte(r.message), "\x00\n\r") {
				t.Fatalf("message %q", r.message)
			}
		}
	})
}
