package utp

import (
	"bytes"
	"errors"
	"testing"
)

// TestPacketRoundTrip: every field survives encoding, and the SACK bitmask is padded to a
// multiple of 4 bytes.
func TestPacketRoundTrip(t *testing.T) {
	h := header{typ: stState, connID: 0xfffe, ts: 0xdeadbeef, tsDiff: 12345, wnd: 1 << 20,
		seq: 0xffff, ack: 0x0001, sack: []byte{0x05, 0x80, 0x01}}
	b := appendHeader(nil, h)
	if len(b) != headerLen+2+4 {
		t.Fatalf("encoded %d bytes, want %d", len(b), headerLen+6)
	}
	got, payload, err := parsePacket(append(b, "payload"...))
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != "payload" {
		t.Fatalf("payload %q", payload)
	}
	want := h
	want.sack = []byte{0x05, 0x80, 0x01, 0}
	if got.typ != want.typ || got.connID != want.connID || got.ts != want.ts || got.tsDiff != want.tsDiff ||
		got.wnd != want.wnd || got.seq != want.seq || got.ack != want.ack || !bytes.Equal(got.sack, want.sack) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestParseRejects: short, wrong version, unknown type, truncated or endless extension chains.
func TestParseRejects(t *testing.T) {
	good := appendHeader(nil, header{typ: stData})
	chain := func(exts ...byte) []byte { b := append([]byte(nil), good...); b[1] = 2; return append(b, exts...) }
	for name, tc := range map[string]struct {
		b   []byte
		err error
	}{
		"short":           {good[:19], errShort},
		"version 0":       {append([]byte{0x00}, good[1:]...), errVersion},
		"type 5":          {append([]byte{0x51}, good[1:]...), errType},
		"no ext length":   {chain(0), errExtension},
		"ext past end":    {chain(0, 10, 1, 2), errExtension},
		"endless chain":   {chain(bytes.Repeat([]byte{2, 0}, 20)...), errExtCount},
		"sack past end":   {append(append([]byte(nil), good[:1]...), append([]byte{1}, append(good[2:], 0, 255, 1)...)...), errExtension},
		"unknown ext end": {chain(0, 1), errExtension},
	} {
		if _, _, err := parsePacket(tc.b); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", name, err, tc.err)
		}
	}
	// An unknown extension is skipped, and a SACK after it is still found.
	b := chain(1, 2, 0xaa, 0xbb, 0, 4, 1, 0, 0, 0)
	h, payload, err := parsePacket(append(b, 'x'))
	if err != nil || !bytes.Equal(h.sack, []byte{1, 0, 0, 0}) || string(payload) != "x" {
		t.Fatalf("got %+v %q %v", h, payload, err)
	}
}

// TestSeqWrap: the comparisons hold across the wrap of the 16-bit space.
func TestSeqWrap(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		less bool
		diff int
	}{
		{0xffff, 0x0000, true, -1},
		{0x0000, 0xffff, false, 1},
		{0xfff0, 0x0010, true, -32},
		{5, 5, false, 0},
		{0x7fff, 0x0000, false, 0x7fff},
	} {
		if got := seqLess(tc.a, tc.b); got != tc.less {
			t.Errorf("seqLess(%#x, %#x) = %v", tc.a, tc.b, got)
		}
		if got := seqDiff(tc.a, tc.b); got != tc.diff {
			t.Errorf("seqDiff(%#x, %#x) = %d, want %d", tc.a, tc.b, got, tc.diff)
		}
	}
}

// FuzzParsePacket: any datagram parses or fails cleanly, never beyond its bounds, and a
// parsed header re-encodes to one that parses the same.
func FuzzParsePacket(f *testing.F) {
	f.Add(appendHeader(nil, header{typ: stSyn, connID: 7, seq: 1}))
	f.Add(appendHeader(nil, header{typ: stState, ack: 9, sack: []byte{0xff, 0, 0, 1}}))
	f.Add(append(appendHeader(nil, header{typ: stData, seq: 0xffff}), "hello"...))
	f.Add([]byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := parsePacket(b)
		if err != nil {
			return
		}
		if !isUTP(b) {
			t.Fatalf("parsed a datagram isUTP rejects")
		}
		if len(payload) > len(b)-headerLen || len(h.sack) > 255 {
			t.Fatalf("payload %d or sack %d out of bounds of %d", len(payload), len(h.sack), len(b))
		}
		again, p2, err := parsePacket(append(appendHeader(nil, h), payload...))
		if err != nil {
			t.Fatalf("re-encoded packet fails: %v", err)
		}
		if again.typ != h.typ || again.seq != h.seq || again.ack != h.ack || again.wnd != h.wnd ||
			again.connID != h.connID || !bytes.Equal(p2, payload) || !bytes.HasPrefix(again.sack, h.sack) {
			t.Fatalf("re-encoded %+v, was %+v", again, h)
		}
	})
}
