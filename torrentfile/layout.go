// Package torrentfile reads and writes BitTorrent metainfo (.torrent files) and magnet links,
// and describes how a torrent's pieces map onto its files.
package torrentfile

import (
	"path/filepath"
	"sort"
	"time"
)

// HashSize is the size of a SHA-1 digest: an info hash or a piece hash.
const HashSize = 20

// Hash is a SHA-1 digest, used for info hashes and piece hashes.
type Hash [HashSize]byte

// Metainfo is a parsed .torrent file (BEP 3, with BEP 12 tiers, BEP 19 and BEP 17 web seeds,
// BEP 5 nodes).
type Metainfo struct {
	// InfoHash is the SHA-1 of the exact bytes of the info dictionary as they stand in the file.
	InfoHash Hash
	// InfoBytes is the raw bencoded info dictionary (what ut_metadata serves to peers).
	InfoBytes []byte
	// Info is the parsed info dictionary.
	Info Info

	// Trackers lists announce URLs by tier (BEP 12). When the file has no announce-list,
	// it holds the single announce URL as one tier. Empty for trackerless torrents.
	Trackers [][]string
	// WebSeeds holds the url-list (BEP 19) URLs: plain web servers holding the files.
	WebSeeds []string
	// HTTPSeeds holds the httpseeds (BEP 17) URLs: scripts answering ?info_hash=&piece=.
	// They speak another protocol than WebSeeds, so the two lists are kept apart.
	HTTPSeeds []string
	// Nodes are DHT bootstrap nodes as "host:port".
	Nodes []string
	// Comment is the free-text comment (comment.utf-8 preferred).
	Comment string
	// CreatedBy names the program that made the file.
	CreatedBy string
	// CreationDate is when the file was made; zero when absent.
	CreationDate time.Time
}

// Info is the info dictionary: everything the info hash covers.
type Info struct {
	// Name is the sanitized suggested name: the file name of a single-file torrent, or the
	// folder name of a multi-file one.
	Name string
	// PieceLength is the size of every piece but the last, in bytes.
	PieceLength int64
	// Pieces holds one SHA-1 per piece.
	Pieces []Hash
	// Private is the BEP 27 private flag: peers only from the trackers.
	Private bool
	// Source is the info dictionary's "source" string (private trackers use it).
	Source string
	// MultiFile is true when the info dictionary has a "files" list.
	MultiFile bool
	// Files lists every file in torrent order, pad files included, with offsets.
	Files []File
	// Length is the total size of all files, pad files included.
	Length int64
}

// File is one file of a torrent laid out in the torrent's byte stream.
type File struct {
	// Path is the sanitized relative path, starting with the torrent's Name: ["name"] for a
	// single-file torrent, ["name", "dir", "file"] for a multi-file one. Elements are never
	// empty, ".", "..", or contain a path separator or NUL.
	Path []string
	// Length is the file size in bytes.
	Length int64
	// Offset is where the file starts in the torrent's concatenated byte stream.
	Offset int64
	// Padding marks BEP 47 pad files: kept in the layout, hidden from listings.
	Padding bool
}

// RelPath returns the file's path relative to the output folder, using the OS separator.
func (f File) RelPath() string { return filepath.Join(f.Path...) }

// NumPieces returns the number of pieces.
func (in *Info) NumPieces() int { return len(in.Pieces) }

// PieceSize returns the size of piece i; the last piece may be shorter.
func (in *Info) PieceSize(i int) int64 {
	if i < 0 || i >= len(in.Pieces) {
		return 0
	}
	if i == len(in.Pieces)-1 {
		return in.Length - int64(i)*in.PieceLength
	}
	return in.PieceLength
}

// PieceOffset returns the torrent offset at which piece i starts.
func (in *Info) PieceOffset(i int) int64 { return int64(i) * in.PieceLength }

// FileAt returns the index of the file that holds torrent offset off, skipping zero-length
// files, or -1 when off is outside the torrent.
func (in *Info) FileAt(off int64) int {
	if off < 0 || off >= in.Length {
		return -1
	}
	// The first file whose end is beyond off.
	return sort.Search(len(in.Files), func(i int) bool {
		f := in.Files[i]
		return f.Offset+f.Length > off
	})
}

// PieceRange returns the half-open range [first, last) of pieces that hold the torrent bytes
// [off, off+n). It is empty when n <= 0.
func (in *Info) PieceRange(off, n int64) (first, last int) {
	if n <= 0 || in.PieceLength <= 0 {
		return 0, 0
	}
	first = int(off / in.PieceLength)
	last = int((off+n-1)/in.PieceLength) + 1
	if last > len(in.Pieces) {
		last = len(in.Pieces)
	}
	return first, last
}

// VisibleFiles returns the indexes of the files that are not pad files.
func (in *Info) VisibleFiles() []int {
	out := make([]int, 0, len(in.Files))
	for i, f := range in.Files {
		if !f.Padding {
			out = append(out, i)
		}
	}
	return out
}
