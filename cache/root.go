// Package cache stores a torrent's verified bytes on disk in the torrent's own file layout
// (sparse files), with a small completion record written atomically after the data is
// fsynced, and manages the per-user cache folder of mounted torrents.
//
// A fully verified range of a file is then a plain pread of a plain file: FUSE can hand the
// kernel the file descriptor, `download` writes straight into its output folder, and resume
// trusts the record and re-verifies on doubt.
package cache

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	bencode "github.com/jackpal/bencode-go"

	"github.com/gotfs/gotfs/torrentfile"
)

// Names inside a torrent's cache folder.
const (
	infoFileName    = "info"    // the bencoded info dictionary
	torrentFileName = "torrent" // the whole .torrent file, when known
	recordFileName  = "complete"
	dataDirName     = "data"
)

// Root is the cache folder: $XDG_CACHE_HOME/gotfs (or ~/.cache/gotfs), with one sub-folder
// per info hash (lower-case hex) holding the metainfo, the completion record and the data.
type Root struct{ Dir string }

// ErrNoDefaultRoot is returned by DefaultRoot when the environment names no cache folder.
var ErrNoDefaultRoot = errors.New("no cache folder: neither $XDG_CACHE_HOME nor $HOME is set")

// SystemRoot is the cache folder of a system service run by root with no home ($HOME and
// $XDG_CACHE_HOME unset), as the FHS places an application's cache.
const SystemRoot = "/var/cache/gotfs"

// DefaultRoot returns $XDG_CACHE_HOME/gotfs, or ~/.cache/gotfs when XDG_CACHE_HOME is unset
// or not absolute; with neither set, SystemRoot for root and ErrNoDefaultRoot for anyone else.
func DefaultRoot() (Root, error) { return defaultRoot(os.Getenv, os.Geteuid()) }

func defaultRoot(getenv func(string) string, euid int) (Root, error) {
	if d := getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return Root{Dir: filepath.Join(d, "gotfs")}, nil
	}
	if home := getenv("HOME"); home != "" {
		return Root{Dir: filepath.Join(home, ".cache", "gotfs")}, nil
	}
	if euid == 0 {
		return Root{Dir: SystemRoot}, nil
	}
	return Root{}, ErrNoDefaultRoot
}

// TorrentDir returns the folder of the torrent with info hash h.
func (r Root) TorrentDir(h torrentfile.Hash) string {
	return filepath.Join(r.Dir, hex.EncodeToString(h[:]))
}

// DataDir returns the folder that holds a mounted torrent's files (Options.DataDir).
func (r Root) DataDir(h torrentfile.Hash) string { return filepath.Join(r.TorrentDir(h), dataDirName) }

// RecordPath returns the completion record of a mounted torrent (Options.RecordPath).
func (r Root) RecordPath(h torrentfile.Hash) string {
	return filepath.Join(r.TorrentDir(h), recordFileName)
}

// Options returns the storage options of a mounted torrent kept in the cache.
func (r Root) Options(h torrentfile.Hash) Options {
	return Options{DataDir: r.DataDir(h), RecordPath: r.RecordPath(h), InfoHash: h}
}

// SaveMetainfo stores a torrent's info dictionary and, when not nil, its whole .torrent
// file, each written atomically, so `cache ls` can name the entry and a magnet link can
// start at once later. infoBytes must hash to h.
func (r Root) SaveMetainfo(h torrentfile.Hash, infoBytes []byte, torrentBytes []byte) error {
	if err := r.check(); err != nil {
		return err
	}
	if len(infoBytes) == 0 {
		return fmt.Errorf("save metainfo %x: no info bytes", h)
	}
	if torrentfile.Hash(sha1.Sum(infoBytes)) != h {
		return fmt.Errorf("save metainfo %x: info bytes hash to %x", h, sha1.Sum(infoBytes))
	}
	dir := r.TorrentDir(h)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save metainfo %x: %w", h, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, infoFileName), infoBytes); err != nil {
		return fmt.Errorf("save metainfo %x: %w", h, err)
	}
	if torrentBytes != nil {
		if err := writeFileAtomic(filepath.Join(dir, torrentFileName), torrentBytes); err != nil {
			return fmt.Errorf("save metainfo %x: %w", h, err)
		}
	}
	return nil
}

// LoadMetainfo returns the saved .torrent file of h or, when only the info dictionary was
// saved, the info dictionary's bytes. A missing entry gives an error wrapping fs.ErrNotExist.
func (r Root) LoadMetainfo(h torrentfile.Hash) ([]byte, error) {
	dir := r.TorrentDir(h)
	b, err := os.ReadFile(filepath.Join(dir, torrentFileName))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(dir, infoFileName))
	}
	if err != nil {
		return nil, fmt.Errorf("load metainfo %x: %w", h, err)
	}
	return b, nil
}

// Entry describes one torrent in the cache, for `gotfs cache ls`.
type Entry struct {
	InfoHash torrentfile.Hash
	// Name is the torrent's name, empty when no metainfo was saved.
	Name string
	// TotalSize is the torrent's length; 0 when unknown.
	TotalSize int64
	// DiskUsage is what the entry's folder occupies on disk (st_blocks*512).
	DiskUsage int64
	// VerifiedBytes and VerifiedPieces come from the completion record.
	VerifiedBytes  int64
	Pieces         int
	VerifiedPieces int
}

// List returns the torrents in the cache, in info hash order. Entries whose metainfo or record
// cannot be read are listed with what is known. A missing cache folder is an empty list.
func (r Root) List() ([]Entry, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache: %w", err)
	}
	var out []Entry
	for _, de := range des {
		h, ok := parseHexHash(de.Name())
		if !ok || !de.IsDir() {
			continue
		}
		e := Entry{InfoHash: h}
		var pieceLen int64
		if b, err := r.LoadMetainfo(h); err == nil {
			if s, err := summarize(b); err == nil {
				e.Name, e.TotalSize, e.Pieces, pieceLen = s.name, s.length, s.pieces, s.pieceLength
			}
		}
		if rec, err := readRecord(r.RecordPath(h)); err == nil &&
			(e.Pieces == 0 || (rec.NumPieces == e.Pieces && rec.PieceLength == pieceLen && rec.TotalLength == e.TotalSize)) {
			e.Pieces, e.TotalSize = rec.NumPieces, rec.TotalLength
			for i := 0; i < rec.NumPieces; i++ {
				if !bitfieldHas(rec.Bitfield, i) {
					continue
				}
				e.VerifiedPieces++
				e.VerifiedBytes += min(rec.PieceLength, rec.TotalLength-int64(i)*rec.PieceLength)
			}
		}
		e.DiskUsage, err = diskUsage(r.TorrentDir(h))
		if err != nil {
			return out, fmt.Errorf("list cache: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Remove deletes the cache entry of h with all its data. It refuses anything that is not a
// direct sub-folder of Root.Dir, and fails with an error wrapping fs.ErrNotExist when there
// is no such entry.
func (r Root) Remove(h torrentfile.Hash) error {
	if err := r.check(); err != nil {
		return err
	}
	dir := r.TorrentDir(h)
	rel, err := filepath.Rel(r.Dir, dir)
	if err != nil || rel != hex.EncodeToString(h[:]) {
		return fmt.Errorf("remove %x: %s is outside %s", h, dir, r.Dir)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("remove %x: %w", h, err)
	}
	if !st.IsDir() {
		// A symlink or a stray file: remove the name only, never what it points to.
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("remove %x: %w", h, err)
		}
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %x: %w", h, err)
	}
	return nil
}

// check refuses a Root whose folder could make TorrentDir land somewhere unexpected.
func (r Root) check() error {
	if r.Dir == "" || !filepath.IsAbs(r.Dir) || filepath.Clean(r.Dir) == string(filepath.Separator) {
		return fmt.Errorf("cache folder %q must be an absolute path other than /", r.Dir)
	}
	return nil
}

func parseHexHash(s string) (torrentfile.Hash, bool) {
	var h torrentfile.Hash
	if len(s) != 2*len(h) || strings.ToLower(s) != s {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, false
	}
	return h, true
}

// diskUsage sums st_blocks*512 over the regular files under dir.
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return nil // vanished meanwhile
			}
			total += allocatedBytes(fi)
		}
		return nil
	})
	return total, err
}

// summary is what List needs from saved metainfo.
type summary struct {
	name                string
	length, pieceLength int64
	pieces              int
}

// summarize reads the name, length and piece count from a .torrent file or a bare info
// dictionary. It is deliberately lenient: it only labels `cache ls` output.
func summarize(b []byte) (summary, error) {
	v, err := bencode.Decode(bytes.NewReader(b))
	if err != nil {
		return summary{}, err
	}
	d, ok := v.(map[string]any)
	if !ok {
		return summary{}, errors.New("metainfo is not a dictionary")
	}
	if info, ok := d["info"].(map[string]any); ok {
		d = info
	}
	var s summary
	s.name, _ = d["name"].(string)
	s.pieceLength, _ = d["piece length"].(int64)
	if p, ok := d["pieces"].(string); ok {
		s.pieces = len(p) / torrentfile.HashSize
	}
	if l, ok := d["length"].(int64); ok {
		s.length = l
	} else if files, ok := d["files"].([]any); ok {
		for _, f := range files {
			if fd, ok := f.(map[string]any); ok {
				l, _ := fd["length"].(int64)
				s.length += l
			}
		}
	}
	return s, nil
}
