package cache

import (
	"crypto/sha1"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
)

// spec describes one file of a hand-built layout: "dir/name:length", or "pad:length".
type spec struct {
	path   string
	length int64
}

// buildInfo lays the files out, fills them with random bytes (pad files with zeros) and
// hashes the pieces. It returns the info and the whole torrent byte stream.
func buildInfo(t testing.TB, name string, pieceLen int64, files []spec, seed uint64) (*torrentfile.Info, []byte) {
	t.Helper()
	info := &torrentfile.Info{Name: name, PieceLength: pieceLen, MultiFile: true}
	var off int64
	for _, f := range files {
		tf := torrentfile.File{Length: f.length, Offset: off}
		if f.path == "pad" {
			tf.Padding = true
			tf.Path = []string{name, ".pad", strconv.FormatInt(f.length, 10)}
		} else {
			tf.Path = append([]string{name}, strings.Split(f.path, "/")...)
		}
		info.Files = append(info.Files, tf)
		off += f.length
	}
	info.Length = off
	data := make([]byte, off)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, f := range info.Files {
		if f.Padding {
			continue
		}
		b := data[f.Offset : f.Offset+f.Length]
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	for p := int64(0); p < off; p += pieceLen {
		info.Pieces = append(info.Pieces, sha1.Sum(data[p:min(p+pieceLen, off)]))
	}
	return info, data
}

// oddLayout has a zero-byte file, small files so that one piece spans three of them, a pad
// file, nested folders and a short last piece.
func oddLayout(t testing.TB) (*torrentfile.Info, []byte) {
	const pl = 32 << 10
	return buildInfo(t, "odd", pl, []spec{
		{"a.bin", 50000},
		{"empty", 0},
		{"b.txt", 3000},
		{"c.txt", 2000}, // piece 1 spans a, b, c and the pad
		{"pad", 2*pl - 55000},
		{"dir/d.mkv", 100000},
		{"dir/sub/e", 7},
		{"dir/sub/empty2", 0},
		{"f", 70001},
	}, 42)
}

func piece(info *torrentfile.Info, data []byte, i int) []byte {
	off := info.PieceOffset(i)
	return data[off : off+info.PieceSize(i)]
}
