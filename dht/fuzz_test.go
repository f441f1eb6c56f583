package dht

import (
	"net/netip"
	"testing"
)

func FuzzKRPC(f *testing.F) {
	for _, tc := range bep5Examples {
		f.Add([]byte(tc.enc))
	}
	f.Add([]byte("d1:rd2:id20:mnopqrstuvwxyz1234565:nodes26:ABCDEFGHIJKLMNOPQRST\x7f\x00\x00\x01\x1a\xe1e1:t2:aa1:y1:re"))
	f.Add([]byte("d1:eli201ee1:t2:aa1:y1:ee"))
	f.Add([]byte("le"))
	// One server, reused: every input also goes through the packet handler.
	s, err := New(Config{Addr: "127.0.0.1:0", Bootstrap: []string{}, QueriesPerSecondPerIP: 1e9, BurstPerIP: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	// Answers go to a discard port of our own.
	src := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMsg(data)
		if err == nil {
			// Encoding is the inverse of decoding for every accepted message.
			m2, err := decodeMsg(m.encode())
			if err != nil {
				t.Fatalf("re-decode of %q: %v", m.encode(), err)
			}
			if !equalMsg(m, m2) {
				t.Fatalf("round trip changed %+v into %+v", m, m2)
			}
			if m.Y == "r" && validateResponse(m) == nil {
				if _, err := parseCompactNodes(m.R.Nodes); err != nil {
					t.Fatalf("validated response with bad nodes: %v", err)
				}
			}
		}
		s.handlePacket(data, src)
	})
}

func FuzzCompactNodes(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("ABCDEFGHIJKLMNOPQRST\x7f\x00\x00\x01\x1a\xe1"))
	f.Add([]byte("def456..."))
	f.Add(make([]byte, 52))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := parseCompactNodes(string(data))
		if (err == nil) != (len(data)%compactNodeLen == 0) {
			t.Fatalf("len %d: err %v", len(data), err)
		}
		if err != nil {
			return
		}
		if len(nodes) != len(data)/compactNodeLen {
			t.Fatalf("%d nodes from %d bytes", len(nodes), len(data))
		}
		if out := appendCompactNodes(nil, nodes); string(out) != string(data) {
			t.Fatalf("round trip %x -> %x", data, out)
		}
	})
}
