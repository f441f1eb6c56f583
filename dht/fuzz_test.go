package dht

import (
	"encoding/json"
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
	// BEP 32 and 42: want lists, nodes6, hybrid values, an ip key.
	f.Add([]byte("d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:ad2:id20:abcdefghij01234567894:wantli6ee9:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"))
	f.Add([]byte("d2:ip18:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe11:rd2:id20:mnopqrstuvwxyz1234566:nodes638:ABCDEFGHIJKLMNOPQRST\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x1a\xe16:valuesl6:\x7f\x00\x00\x01\x1a\xe118:\xfe\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1ee1:t2:aa1:y1:re"))
	f.Add([]byte("d1:rd2:id20:mnopqrstuvwxyz1234566:nodes637:ABCDEFGHIJKLMNOPQRST\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1ae1:t2:aa1:y1:re"))
	// One server running both DHTs, reused: every input also goes through the packet handler,
	// from an IPv4 and from an IPv6 source.
	s, err := New(Config{Addr: "127.0.0.1:0", Addr6: "[::1]:0", Bootstrap: []string{}, QueriesPerSecondPerIP: 1e9, BurstPerIP: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	// Answers go to a discard port of our own.
	src := netip.MustParseAddrPort("127.0.0.1:9")
	src6 := netip.MustParseAddrPort("[::1]:9")
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
				if _, err := parseCompactNodes6(m.R.Nodes6); err != nil {
					t.Fatalf("validated response with bad nodes6: %v", err)
				}
			}
			if m.IP != "" {
				s.vote(s.v4, src.Addr(), m.IP)
			}
		}
		s.handlePacket(data, src)
		s.handlePacket(data, src6)
	})
}

// FuzzCompactNodes parses data as "nodes" and as "nodes6" (BEP 32); every address must be
// judged by nodeAddrOK without a panic, and what is contactable must be of the right family.
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

func FuzzCompactNodes6(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("ABCDEFGHIJKLMNOPQRST\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1"))
	f.Add([]byte("ABCDEFGHIJKLMNOPQRST\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x1a\xe1"))
	f.Add([]byte("ABCDEFGHIJKLMNOPQRST\xfe\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1"))
	f.Add(make([]byte, 37))
	from := []netip.AddrPort{netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[fd00::1]:1")}
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := parseCompactNodes6(string(data))
		if (err == nil) != (len(data)%compactNode6Len == 0) {
			t.Fatalf("len %d: err %v", len(data), err)
		}
		if err != nil {
			return
		}
		if len(nodes) != len(data)/compactNode6Len {
			t.Fatalf("%d nodes from %d bytes", len(nodes), len(data))
		}
		kept := 0
		for _, n := range nodes {
			for _, fr := range from {
				if nodeAddrOK(n.Addr, fr, true, false) {
					if ip := n.Addr.Addr(); !ip.Is6() || ip.Is4In6() || ip.IsLinkLocalUnicast() || locality(ip) < locality(fr.Addr()) {
						t.Fatalf("%v from %v accepted", n.Addr, fr)
					}
				}
				if nodeAddrOK(n.Addr, fr, false, false) {
					t.Fatalf("IPv6 node %v accepted for the IPv4 DHT", n.Addr)
				}
			}
			if !n.Addr.Addr().Is4In6() {
				kept++
			}
		}
		if out := appendCompactNodes6(nil, nodes); len(out) != kept*compactNode6Len {
			t.Fatalf("%d bytes written back for %d IPv6 nodes", len(out), kept)
		}
	})
}

// FuzzState feeds state files to the loader: never a panic, bounded nodes, only addresses a
// table may hold.
func FuzzState(f *testing.F) {
	f.Add([]byte(`{"id":"0102030405060708090a0b0c0d0e0f1011121314","id6":"1102030405060708090a0b0c0d0e0f1011121314","nodes":[{"id":"0102030405060708090a0b0c0d0e0f1011121314","addr":"[::1]:6881"},{"id":"0102030405060708090a0b0c0d0e0f1011121314","addr":"127.0.0.1:6881"}]}`))
	f.Add([]byte(`{"id":"","nodes":[{"id":"zz","addr":"[fe80::1%eth0]:1"},{"id":"0102030405060708090a0b0c0d0e0f1011121314","addr":"[::ffff:1.2.3.4]:0"}]}`))
	f.Add([]byte(`{"id":"01"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sf stateFile
		if json.Unmarshal(data, &sf) != nil {
			return
		}
		st, err := parseState("fuzz", &sf)
		if err != nil {
			return
		}
		if len(st.nodes) > maxStateNodes {
			t.Fatalf("%d nodes", len(st.nodes))
		}
		for _, n := range st.nodes {
			ip := n.Addr.Addr()
			if ip.Zone() != "" || ip.Is4In6() || (ip.Is6() && ip.IsLinkLocalUnicast()) || !usableAddr(n.Addr, false) {
				t.Fatalf("state node %v kept", n.Addr)
			}
		}
		if len(st.nodesOf(false))+len(st.nodesOf(true)) != len(st.nodes) {
			t.Fatal("nodes lost between the families")
		}
	})
}
