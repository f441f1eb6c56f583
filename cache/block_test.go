package cache

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestWriteBlockVerifyPiece: blocks written in any order, across file boundaries and pad
// files, become a verified piece only when VerifyPiece finds the right hash; a wrong block
// leaves the piece unverified and is overwritten by the next try; a verified piece is never
// written again.
func TestWriteBlockVerifyPiece(t *testing.T) {
	info, data := oddLayout(t)
	s := mustOpen(t, info, testOptions(t))
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	const block = 1000 // not a divisor of the piece length: the last block is short
	for i := range info.Pieces {
		p := piece(info, data, i)
		var begins []int
		for b := 0; b < len(p); b += block {
			begins = append(begins, b)
		}
		rng.Shuffle(len(begins), func(a, b int) { begins[a], begins[b] = begins[b], begins[a] })
		// First a try with one corrupt block.
		for k, b := range begins {
			blk := append([]byte(nil), p[b:min(b+block, len(p))]...)
			if k == 0 {
				blk[0] ^= 0xff
			}
			if err := s.WriteBlock(i, b, blk); err != nil {
				t.Fatalf("WriteBlock(%d, %d): %v", i, b, err)
			}
		}
		if s.Verified(i) {
			t.Fatalf("piece %d verified before VerifyPiece", i)
		}
		if err := s.ReadBlock(i, 0, make([]byte, 1)); !errors.Is(err, ErrNotVerified) {
			t.Fatalf("ReadBlock of an unverified piece: %v", err)
		}
		if ok, err := s.VerifyPiece(i, make([]byte, 777)); ok || err != nil || s.Verified(i) {
			t.Fatalf("VerifyPiece(%d) of a corrupt piece = %v, %v", i, ok, err)
		}
		// Then the right bytes: a small scratch buffer hashes a piece of any size.
		for _, b := range begins {
			if err := s.WriteBlock(i, b, p[b:min(b+block, len(p))]); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.VerifyPiece(i, make([]byte, 777)); !ok || err != nil || !s.Verified(i) {
			t.Fatalf("VerifyPiece(%d) = %v, %v", i, ok, err)
		}
		if err := s.WriteBlock(i, 0, make([]byte, 10)); err == nil {
			t.Fatalf("WriteBlock over verified piece %d was accepted", i)
		}
		got, err := s.ReadPiece(i, nil)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("piece %d reads back wrong: %v", i, err)
		}
	}
	for _, tt := range []struct{ i, begin, n int }{{-1, 0, 1}, {len(info.Pieces), 0, 1}, {0, -1, 1}, {0, int(info.PieceLength), 1}} {
		if err := s.WriteBlock(tt.i, tt.begin, make([]byte, tt.n)); err == nil {
			t.Errorf("WriteBlock(%d, %d, %d bytes) was accepted", tt.i, tt.begin, tt.n)
		}
	}
}

func TestWriteBlockReadOnly(t *testing.T) {
	info, _ := oddLayout(t)
	opts := testOptions(t)
	opts.ReadOnly = true
	s := mustOpen(t, info, opts)
	defer s.Close()
	if err := s.WriteBlock(0, 0, make([]byte, 10)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("WriteBlock on a read-only storage: %v", err)
	}
}

// TestEvictFailureKeepsWholePieces: a piece unverified for eviction whose eviction fails
// before its bytes are touched is verified again (the engine relies on it to let waiting reads
// go on).
func TestEvictFailureKeepsWholePieces(t *testing.T) {
	info, data := oddLayout(t)
	opts := testOptions(t)
	s := mustOpen(t, info, opts)
	writeAll(t, s, info, data, []int{0, 1, 2}, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.ReadOnly = true
	s = mustOpen(t, info, opts)
	defer s.Close()
	s.Unverify(1)
	if s.Verified(1) {
		t.Fatal("Unverify left the piece verified")
	}
	if err := s.EvictPieces([]int{1, 2}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("EvictPieces on a read-only storage: %v", err)
	}
	for _, i := range []int{1, 2} {
		if !s.Verified(i) {
			t.Errorf("piece %d not verified again after a failed eviction", i)
		}
	}
}
