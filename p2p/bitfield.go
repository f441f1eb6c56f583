package p2p

import (
	"encoding/binary"
	"math/bits"
)

// Bitfield is a set of piece indexes in wire order: piece 0 is the high bit of byte 0.
// Indexes outside the bitfield read as absent and are ignored by Set and Clear.
type Bitfield []byte

// NewBitfield returns an empty bitfield for n pieces (ceil(n/8) bytes).
func NewBitfield(n int) Bitfield {
	if n <= 0 {
		return Bitfield{}
	}
	return make(Bitfield, (n+7)/8)
}

// Has reports whether piece i is set.
func (b Bitfield) Has(i int) bool {
	if i < 0 || i>>3 >= len(b) {
		return false
	}
	return b[i>>3]&(0x80>>(i&7)) != 0
}

// Set sets piece i.
func (b Bitfield) Set(i int) {
	if i < 0 || i>>3 >= len(b) {
		return
	}
	b[i>>3] |= 0x80 >> (i & 7)
}

// Clear clears piece i.
func (b Bitfield) Clear(i int) {
	if i < 0 || i>>3 >= len(b) {
		return
	}
	b[i>>3] &^= 0x80 >> (i & 7)
}

// Count returns the number of pieces set.
func (b Bitfield) Count() int {
	n := 0
	for len(b) >= 8 {
		n += bits.OnesCount64(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}

// Clone returns a copy of b, for keeping a received bitfield past the next ReadMessage.
func (b Bitfield) Clone() Bitfield {
	return append(Bitfield(nil), b...)
}

// ValidateBitfield checks that b is a well-formed bitfield for numPieces pieces: exactly
// ceil(numPieces/8) bytes with the spare bits of the last byte clear. Errors wrap
// ErrProtocol.
func ValidateBitfield(b []byte, numPieces int) error {
	if numPieces < 0 {
		return protoErr("bitfield for %d pieces", numPieces)
	}
	want := (numPieces + 7) / 8
	if len(b) != want {
		return protoErr("bitfield of %d bytes, want %d for %d pieces", len(b), want, numPieces)
	}
	if spare := numPieces & 7; spare != 0 && b[want-1]&(0xff>>spare) != 0 {
		return protoErr("bitfield has spare bits set after piece %d", numPieces-1)
	}
	return nil
}
