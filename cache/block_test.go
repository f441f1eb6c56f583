package cache

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
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

// TestVerifyPieceFrom: a piece whose first bytes were hashed in memory is verified by reading
// back only the rest; a wrong byte on disk after the hashed prefix, or a hashed prefix that
// differs from the piece, leaves it unverified; a prefix longer than the piece is refused.
func TestVerifyPieceFrom(t *testing.T) {
	info, data := oddLayout(t)
	s := mustOpen(t, info, testOptions(t))
	defer s.Close()
	for i := range info.Pieces {
		p := piece(info, data, i)
		prefix := int64(len(p) / 3)
		// The rest on disk is corrupt: the piece fails.
		bad := append([]byte(nil), p...)
		k := len(bad) - 1
		for k > int(prefix) && inPadFile(info, info.PieceOffset(i)+int64(k)) {
			k-- // pad bytes are never written: corrupt a byte of a real file
		}
		bad[k] ^= 0x01
		if err := s.WriteBlock(i, 0, bad); err != nil {
			t.Fatal(err)
		}
		h := sha1.New()
		h.Write(p[:prefix])
		if ok, err := s.VerifyPieceFrom(i, h, prefix, make([]byte, 333)); ok || err != nil || s.Verified(i) {
			t.Fatalf("piece %d with a corrupt rest: %v, %v", i, ok, err)
		}
		// The disk is right but the hashed prefix is not: the piece fails.
		if err := s.WriteBlock(i, 0, p); err != nil {
			t.Fatal(err)
		}
		h = sha1.New()
		h.Write(bad[:prefix-1])
		h.Write([]byte{p[prefix-1] ^ 0x80})
		if ok, err := s.VerifyPieceFrom(i, h, prefix, nil); ok || err != nil || s.Verified(i) {
			t.Fatalf("piece %d with a wrong hashed prefix: %v, %v", i, ok, err)
		}
		if _, err := s.VerifyPieceFrom(i, sha1.New(), int64(len(p))+1, nil); err == nil {
			t.Fatalf("piece %d: a prefix longer than the piece was accepted", i)
		}
		// Both right: verified, whether all, some or none of it was hashed in memory.
		h = sha1.New()
		n := prefix
		if i%2 == 0 {
			n = int64(len(p))
		}
		h.Write(p[:n])
		if ok, err := s.VerifyPieceFrom(i, h, n, make([]byte, 333)); !ok || err != nil || !s.Verified(i) {
			t.Fatalf("piece %d: %v, %v", i, ok, err)
		}
	}
}

// inPadFile reports whether torrent offset off lies in a pad file.
func inPadFile(info *torrentfile.Info, off int64) bool {
	for _, f := range info.Files {
		if off >= f.Offset && off < f.Offset+f.Length {
			return f.Padding
		}
	}
	return false
}

// TestWriteBlocks: runs of consecutive blocks written at once (one pwritev inside a file,
// block by block across file boundaries and pad files) give the same pieces as WriteBlock;
// pad files are never created; a verified piece and a range outside the piece are refused.
func TestWriteBlocks(t *testing.T) {
	info, data := oddLayout(t)
	s := mustOpen(t, info, testOptions(t))
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	const block = 1000
	for i := range info.Pieces {
		p := piece(info, data, i)
		for b := 0; b < len(p); {
			var run [][]byte
			begin := b
			for n := 1 + rng.IntN(5); n > 0 && b < len(p); n-- {
				// Copies, so that a write that reached the file from the wrong slice shows.
				run = append(run, append([]byte(nil), p[b:min(b+block, len(p))]...))
				b += block
			}
			if err := s.WriteBlocks(i, begin, run); err != nil {
				t.Fatalf("WriteBlocks(%d, %d, %d blocks): %v", i, begin, len(run), err)
			}
		}
		if ok, err := s.VerifyPiece(i, make([]byte, 4096)); !ok || err != nil {
			t.Fatalf("VerifyPiece(%d) after WriteBlocks = %v, %v", i, ok, err)
		}
		if err := s.WriteBlocks(i, 0, [][]byte{make([]byte, 10), make([]byte, 10)}); err == nil {
			t.Fatalf("WriteBlocks over verified piece %d was accepted", i)
		}
	}
	for _, f := range info.Files {
		if f.Padding {
			if _, err := os.Stat(filepath.Join(s.opts.DataDir, f.RelPath())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pad file %v: %v, want it never created", f.Path, err)
			}
		}
	}
	two := [][]byte{make([]byte, 10), make([]byte, 10)}
	for _, tt := range []struct{ i, begin int }{{-1, 0}, {len(info.Pieces), 0}, {0, -1}, {0, int(info.PieceLength) - 15}} {
		if err := s.WriteBlocks(tt.i, tt.begin, two); err == nil {
			t.Errorf("WriteBlocks(%d, %d, 20 bytes) was accepted", tt.i, tt.begin)
		}
	}
}
