package torrentfile

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"

	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// MaxTorrentSize is the largest .torrent file Parse and Load accept.
const MaxTorrentSize = 100 << 20

// MaxPieces is the largest number of pieces a torrent may have (libtorrent's default limit).
const MaxPieces = 0x200000

// MaxPieceLength is the largest piece length accepted (libtorrent's limit, INT_MAX/2).
const MaxPieceLength = math.MaxInt32 / 2

// maxFileLength mirrors libtorrent: a file may not have 2^30 or more 16 KiB blocks.
const maxFileLength = (math.MaxInt32/2)*16384 - 1

// maxDuplicateRenames bounds the work spent renaming files with clashing paths.
const maxDuplicateRenames = 1000

// ErrV2Only is returned for BitTorrent v2-only torrents (BEP 52 without v1 piece hashes).
var ErrV2Only = errors.New("v2-only torrents are not supported yet")

// Load reads and parses the .torrent file at path.
func Load(path string) (*Metainfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathError(path, err)
	}
	defer f.Close()
	mi, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mi, nil
}

// Parse reads a .torrent file of at most MaxTorrentSize bytes from r and parses it.
func Parse(r io.Reader) (*Metainfo, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxTorrentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read torrent: %w", err)
	}
	if len(b) > MaxTorrentSize {
		return nil, fmt.Errorf("torrent file is larger than %d MiB", MaxTorrentSize>>20)
	}
	return parse(b, false)
}

// ParseBytes parses the bytes of a .torrent file. The result does not alias b.
func ParseBytes(b []byte) (*Metainfo, error) {
	if len(b) > MaxTorrentSize {
		return nil, fmt.Errorf("torrent file is larger than %d MiB", MaxTorrentSize>>20)
	}
	return parse(b, true)
}

// ParseInfo parses a bare bencoded info dictionary, such as one fetched from peers with
// ut_metadata (BEP 9). The info hash is the SHA-1 of infoBytes. The result does not alias
// infoBytes.
func ParseInfo(infoBytes []byte) (*Info, Hash, error) {
	if err := bencode.Check(infoBytes); err != nil {
		return nil, Hash{}, fmt.Errorf("torrent info: %w", err)
	}
	v, err := bencode.DecodeValue(infoBytes)
	if err != nil {
		return nil, Hash{}, fmt.Errorf("torrent info: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, Hash{}, errors.New("torrent info: not a dictionary")
	}
	h := Hash(sha1.Sum(infoBytes))
	info, err := parseInfo(d, h)
	if err != nil {
		return nil, Hash{}, err
	}
	return info, h, nil
}

func parse(b []byte, copyInfo bool) (*Metainfo, error) {
	// Like libtorrent, tolerate what follows the top-level value, but only whitespace
	// (files saved with a trailing newline exist).
	end, err := bencode.Span(b, 0)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b[end:])) != 0 {
		return nil, fmt.Errorf("invalid bencoding: %d bytes of trailing data", len(b)-end)
	}
	b = b[:end]
	if b[0] != 'd' {
		return nil, errors.New("file is not a bencoded dictionary")
	}
	span, ok, err := bencode.DictValue(b, "info")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("missing info dictionary")
	}
	if span[0] != 'd' {
		return nil, errors.New("info is not a dictionary")
	}
	v, err := bencode.DecodeValue(b)
	if err != nil {
		return nil, err
	}
	top := v.(map[string]any)
	mi := &Metainfo{InfoHash: Hash(sha1.Sum(span))}
	if copyInfo {
		mi.InfoBytes = bytes.Clone(span)
	} else {
		mi.InfoBytes = span[:len(span):len(span)]
	}
	info, err := parseInfo(top["info"].(map[string]any), mi.InfoHash)
	if err != nil {
		return nil, err
	}
	mi.Info = *info
	mi.Trackers = parseTrackers(top)
	mi.WebSeeds = parseURLList(top, "url-list")
	mi.HTTPSeeds = parseURLList(top, "httpseeds")
	mi.Nodes = parseNodes(top["nodes"])
	mi.Comment = firstString(top, "comment.utf-8", "comment")
	mi.CreatedBy = firstString(top, "created by.utf-8", "created by")
	if cd, ok := top["creation date"].(int64); ok && cd > 0 {
		mi.CreationDate = time.Unix(cd, 0).UTC()
	}
	return mi, nil
}

// firstString returns the first of keys whose value in d is a string, or "".
func firstString(d map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := d[k].(string); ok {
			return s
		}
	}
	return ""
}

func parseInfo(d map[string]any, infoHash Hash) (*Info, error) {
	version := int64(1)
	if mv, ok := d["meta version"].(int64); ok {
		version = mv
	}
	_, hasPieces := d["pieces"]
	_, hasTree := d["file tree"]
	switch {
	case version > 2:
		return nil, fmt.Errorf("unknown meta version %d", version)
	case (version == 2 || hasTree) && !hasPieces:
		return nil, ErrV2Only
	}

	pl, ok := d["piece length"].(int64)
	if !ok {
		return nil, errors.New("missing piece length")
	}
	if pl <= 0 || pl > MaxPieceLength {
		return nil, fmt.Errorf("invalid piece length %d", pl)
	}
	info := &Info{PieceLength: pl}

	rawName, ok := d["name.utf-8"].(string)
	if !ok {
		if rawName, ok = d["name"].(string); !ok {
			return nil, errors.New("missing name")
		}
	}
	info.Name = sanitizeElement(rawName)
	info.Private = isTrue(d["private"])
	info.Source, _ = d["source"].(string)

	if files, ok := d["files"].([]any); ok {
		info.MultiFile = true
		if info.Name == "" {
			info.Name = hex.EncodeToString(infoHash[:])
		}
		for i, fe := range files {
			fd, ok := fe.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("file %d is not a dictionary", i)
			}
			f, keep, err := parseFile(fd, info.Name)
			if err != nil {
				return nil, fmt.Errorf("file %d: %w", i, err)
			}
			if keep {
				info.Files = append(info.Files, f)
			}
		}
		if len(files) == 0 {
			return nil, errors.New("no files")
		}
	} else {
		if info.Name == "" {
			return nil, errors.New("missing name")
		}
		length, ok := d["length"].(int64)
		if !ok {
			return nil, errors.New("missing length")
		}
		if err := checkLength(length); err != nil {
			return nil, err
		}
		info.Files = []File{{Path: []string{info.Name}, Length: length}}
	}

	var total int64
	for i := range info.Files {
		f := &info.Files[i]
		if total > math.MaxInt64-f.Length {
			return nil, errors.New("total length overflows")
		}
		f.Offset = total
		total += f.Length
	}
	info.Length = total
	if total == 0 {
		return nil, errors.New("total length is zero")
	}
	if total/pl >= math.MaxInt32 {
		return nil, fmt.Errorf("too many pieces (length %d, piece length %d)", total, pl)
	}
	numPieces := (total + pl - 1) / pl
	if numPieces > MaxPieces {
		return nil, fmt.Errorf("too many pieces: %d, the limit is %d", numPieces, MaxPieces)
	}
	pieces, ok := d["pieces"].(string)
	if !ok {
		return nil, errors.New("missing pieces")
	}
	if int64(len(pieces)) != numPieces*HashSize {
		if len(pieces)%HashSize != 0 {
			return nil, fmt.Errorf("pieces is %d bytes long, not a multiple of %d", len(pieces), HashSize)
		}
		return nil, fmt.Errorf("%d piece hashes for %d pieces (length %d, piece length %d)",
			len(pieces)/HashSize, numPieces, total, pl)
	}
	info.Pieces = make([]Hash, numPieces)
	for i := range info.Pieces {
		copy(info.Pieces[i][:], pieces[i*HashSize:])
	}

	if err := resolveDuplicates(info.Files); err != nil {
		return nil, err
	}
	if version == 2 || hasTree {
		if err := checkHybrid(d, info); err != nil {
			return nil, fmt.Errorf("hybrid v1/v2: %w", err)
		}
	}
	return info, nil
}

func isTrue(v any) bool {
	i, ok := v.(int64)
	return ok && i != 0
}

func checkLength(n int64) error {
	if n < 0 {
		return fmt.Errorf("negative file length %d", n)
	}
	if n > maxFileLength {
		return fmt.Errorf("file length %d is too large", n)
	}
	return nil
}

// parseFile parses one entry of a multi-file torrent's files list. keep is false for
// symlinks, which hold no bytes and are not created.
func parseFile(d map[string]any, name string) (f File, keep bool, err error) {
	attr, _ := d["attr"].(string)
	symlink := strings.ContainsRune(attr, 'l')
	if symlink {
		sp, ok := d["symlink path"].([]any)
		if !ok {
			symlink = false // no target: libtorrent treats it as a plain file
		} else {
			for _, e := range sp {
				if _, ok := e.(string); !ok {
					return File{}, false, errors.New("symlink path element is not a string")
				}
			}
		}
	}
	f.Padding = strings.ContainsRune(attr, 'p')
	if !symlink {
		length, ok := d["length"].(int64)
		if !ok {
			return File{}, false, errors.New("missing or invalid length")
		}
		if err := checkLength(length); err != nil {
			return File{}, false, err
		}
		f.Length = length
	}
	p, ok := d["path.utf-8"].([]any)
	if !ok {
		p, _ = d["path"].([]any)
	}
	f.Path = []string{name}
	switch {
	case len(p) > 0:
		for _, e := range p {
			s, ok := e.(string)
			if !ok {
				return File{}, false, errors.New("path element is not a string")
			}
			if s = sanitizeElement(s); s != "" {
				f.Path = append(f.Path, s)
			}
		}
		if len(f.Path) == 1 {
			f.Path = append(f.Path, "_")
		}
	case f.Padding:
		f.Path = append(f.Path, ".pad", strconv.FormatInt(f.Length, 10))
	default:
		return File{}, false, errors.New("missing path")
	}
	for _, e := range f.Path[1:] {
		if strings.Contains(e, "_____padding_file_") {
			f.Padding = true
		}
	}
	return f, !symlink, nil
}

// pathError reports a file that could not be opened as "PATH: why", without the operation and
// path that an *os.PathError repeats.
func pathError(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}
