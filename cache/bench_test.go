package cache

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

const benchPieceLen = 256 << 10

// BenchmarkStorageWriteRead writes every piece of a 16 MiB, 4-file torrent with WritePiece
// and reads it back with ReadAt in 16 KiB blocks; compare with BenchmarkPlainFile.
func BenchmarkStorageWriteRead(b *testing.B) {
	info, data := buildInfo(b, "bench", benchPieceLen,
		[]spec{{"a", 5<<20 + 1}, {"b", 3 << 20}, {"c", 4<<20 - 1}, {"d", 4 << 20}}, 1)
	s := mustOpen(b, info, testOptions(b))
	defer s.Close()
	blk := make([]byte, 16<<10)
	b.SetBytes(info.Length)
	b.ReportAllocs()
	for b.Loop() {
		for i := range info.NumPieces() {
			s.clearBit(i)
			if err := s.WritePiece(i, piece(info, data, i)); err != nil {
				b.Fatal(err)
			}
		}
		for off := int64(0); off < info.Length; off += int64(len(blk)) {
			if _, err := s.ReadAt(blk, off); err != nil && off+int64(len(blk)) <= info.Length {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPlainFile is the baseline: the same bytes through WriteAt/ReadAt of one file.
func BenchmarkPlainFile(b *testing.B) {
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	blk := make([]byte, 16<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		for off := 0; off < len(data); off += benchPieceLen {
			if _, err := f.WriteAt(data[off:off+benchPieceLen], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		for off := int64(0); off < int64(len(data)); off += int64(len(blk)) {
			if _, err := f.ReadAt(blk, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCheck hashes a 16 MiB torrent on all cores.
func BenchmarkCheck(b *testing.B) {
	info, data := buildInfo(b, "bench", benchPieceLen, []spec{{"a", 16 << 20}}, 1)
	s := mustOpen(b, info, testOptions(b))
	defer s.Close()
	for i := range info.NumPieces() {
		if err := s.WritePiece(i, piece(info, data, i)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(info.Length)
	for b.Loop() {
		if err := s.Check(b.Context(), nil); err != nil {
			b.Fatal(err)
		}
	}
}
