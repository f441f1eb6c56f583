package p2p

import (
	"errors"
	"testing"
)

func TestBitfield(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
		b := NewBitfield(n)
		if len(b) != (n+7)/8 {
			t.Fatalf("NewBitfield(%d) has %d bytes", n, len(b))
		}
		for i := 0; i < n; i += 3 {
			b.Set(i)
		}
		want := (n + 2) / 3
		if b.Count() != want {
			t.Fatalf("n=%d: Count = %d, want %d", n, b.Count(), want)
		}
		for i := 0; i < n; i++ {
			if b.Has(i) != (i%3 == 0) {
				t.Fatalf("n=%d: Has(%d) = %v", n, i, b.Has(i))
			}
		}
		if err := ValidateBitfield(b, n); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i := 0; i < n; i += 3 {
			b.Clear(i)
		}
		if b.Count() != 0 {
			t.Fatalf("n=%d: Count after Clear = %d", n, b.Count())
		}
		// Out of range: ignored, never panics.
		for _, i := range []int{-1, -100, len(b) * 8, 1 << 40} {
			b.Set(i)
			b.Clear(i)
			if b.Has(i) {
				t.Fatalf("Has(%d) out of range is true", i)
			}
		}
		if b.Count() != 0 {
			t.Fatalf("out-of-range Set changed the bitfield")
		}
	}
	b := NewBitfield(10)
	b.Set(0)
	if b[0] != 0x80 {
		t.Fatalf("piece 0 must be the high bit of byte 0, got %08b", b[0])
	}
	b.Set(9)
	if b[1] != 0x40 {
		t.Fatalf("piece 9 must be bit 6 of byte 1, got %08b", b[1])
	}
	c := b.Clone()
	c.Clear(0)
	if !b.Has(0) {
		t.Fatal("Clone shares memory")
	}
}

func TestValidateBitfield(t *testing.T) {
	cases := []struct {
		b  []byte
		n  int
		ok bool
	}{
		{nil, 0, true},
		{[]byte{0xff}, 8, true},
		{[]byte{0xff, 0x80}, 9, true},
		{[]byte{0xff, 0xc0}, 9, false}, // spare bit
		{[]byte{0xff, 0x01}, 9, false}, // last spare bit
		{[]byte{0xff}, 9, false},       // short
		{[]byte{0xff, 0, 0}, 9, false}, // long
		{[]byte{0xfe}, 7, true},
		{[]byte{0xff}, 7, false},
		{nil, -1, false},
	}
	for _, c := range cases {
		err := ValidateBitfield(c.b, c.n)
		if (err == nil) != c.ok {
			t.Errorf("ValidateBitfield(%x, %d) = %v, want ok=%v", c.b, c.n, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Errorf("error %v does not wrap ErrProtocol", err)
		}
	}
}
