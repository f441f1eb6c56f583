package cache

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/gotfs/gotfs/torrentfile"
)

// The completion record is a small binary file (little-endian):
//
//	magic      [8]byte "GOTFSREC"
//	version    uint32  (1)
//	flags      uint32  (0)
//	infoHash   [20]byte (zero when the Storage was opened without one)
//	layout     [20]byte SHA-1 over piece length, total length, piece hashes and files
//	pieceLen   uint64
//	totalLen   uint64
//	numPieces  uint32
//	numFiles   uint32
//	files      numFiles × {size int64, mtime int64 (ns)}: each file's size and modification
//	           time when the record was written, size -1 when the file did not exist
//	bitfield   ceil(numPieces/8) bytes, BEP 3 order (high bit = piece 0)
//	crc        uint32  CRC-32C of everything before it
//
// A record that fails any check is ignored and the files on disk are verified instead.
const (
	recordMagic      = "GOTFSREC"
	recordVersion    = 1
	recordHeaderSize = 8 + 4 + 4 + 20 + 20 + 8 + 8 + 4 + 4
	// maxRecordSize bounds what we read: 16M pieces and 4M files are far beyond any torrent.
	maxRecordSize = 1 << 28
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// fileStamp is a file's size and modification time as stored in the record.
type fileStamp struct {
	Size  int64 // -1: missing
	MTime int64
}

// record is a decoded completion record.
type record struct {
	InfoHash    torrentfile.Hash
	Layout      torrentfile.Hash
	PieceLength int64
	TotalLength int64
	NumPieces   int
	Files       []fileStamp
	Bitfield    []byte // BEP 3 order
}

func (r *record) marshal() []byte {
	n := recordHeaderSize + 16*len(r.Files) + len(r.Bitfield) + 4
	b := make([]byte, 0, n)
	b = append(b, recordMagic...)
	b = binary.LittleEndian.AppendUint32(b, recordVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, r.InfoHash[:]...)
	b = append(b, r.Layout[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.PieceLength))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.TotalLength))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.NumPieces))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Files)))
	for _, f := range r.Files {
		b = binary.LittleEndian.AppendUint64(b, uint64(f.Size))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.MTime))
	}
	b = append(b, r.Bitfield...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	return b
}

var errBadRecord = errors.New("malformed completion record")

func unmarshalRecord(b []byte) (*record, error) {
	if len(b) < recordHeaderSize+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", errBadRecord, len(b))
	}
	if string(b[:8]) != recordMagic {
		return nil, fmt.Errorf("%w: bad magic", errBadRecord)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != recordVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", errBadRecord, v)
	}
	r := &record{}
	p := 16
	copy(r.InfoHash[:], b[p:p+20])
	p += 20
	copy(r.Layout[:], b[p:p+20])
	p += 20
	r.PieceLength = int64(binary.LittleEndian.Uint64(b[p:]))
	r.TotalLength = int64(binary.LittleEndian.Uint64(b[p+8:]))
	r.NumPieces = int(binary.LittleEndian.Uint32(b[p+16:]))
	nFiles := int(binary.LittleEndian.Uint32(b[p+20:]))
	p += 24
	if r.PieceLength <= 0 || r.TotalLength < 0 {
		return nil, fmt.Errorf("%w: bad sizes", errBadRecord)
	}
	want := recordHeaderSize + 16*nFiles + (r.NumPieces+7)/8
	if len(body) != want {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errBadRecord, len(body), want)
	}
	r.Files = make([]fileStamp, nFiles)
	for i := range r.Files {
		r.Files[i].Size = int64(binary.LittleEndian.Uint64(b[p:]))
		r.Files[i].MTime = int64(binary.LittleEndian.Uint64(b[p+8:]))
		p += 16
	}
	r.Bitfield = append([]byte(nil), body[p:]...)
	return r, nil
}

// readRecord reads and decodes the record at path.
func readRecord(path string) (*record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes is too large", errBadRecord, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return unmarshalRecord(b)
}

// layoutDigest identifies a torrent's content and file layout, so that a record written for
// one torrent is never applied to another even when no info hash is known.
func layoutDigest(info *torrentfile.Info) torrentfile.Hash {
	h := sha1.New()
	var b [8]byte
	h.Write([]byte("gotfs layout v1\x00"))
	binary.LittleEndian.PutUint64(b[:], uint64(info.PieceLength))
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:], uint64(info.Length))
	h.Write(b[:])
	for _, p := range info.Pieces {
		h.Write(p[:])
	}
	for _, f := range info.Files {
		binary.LittleEndian.PutUint64(b[:], uint64(f.Length))
		h.Write(b[:])
		if f.Padding {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
		for _, e := range f.Path {
			h.Write([]byte(e))
			h.Write([]byte{0})
		}
		h.Write([]byte{0xff})
	}
	var out torrentfile.Hash
	h.Sum(out[:0])
	return out
}

// writeFileAtomic replaces path with data: it writes a temporary file in the same folder,
// fsyncs it, renames it over path and fsyncs the folder, so a crash leaves either the old or
// the new content.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
