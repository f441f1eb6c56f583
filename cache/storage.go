package cache

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gotfs/gotfs/torrentfile"
)

// ErrNotVerified is returned by ReadBlock for a piece that is not verified.
var ErrNotVerified = errors.New("piece not verified")

// ErrReadOnly is returned by methods that would modify a Storage opened with ReadOnly.
var ErrReadOnly = errors.New("storage is read-only")

// Options configures Open.
type Options struct {
	// DataDir holds the files: DataDir/<File.Path...>. For `gotfs download -o DIR` this is DIR,
	// for a mount it is Root.DataDir(hash).
	DataDir string
	// RecordPath is the completion record file, e.g. Root.RecordPath(hash).
	RecordPath string
	// ReadOnly seeds an existing folder: files are never created, truncated or punched, and
	// WritePiece and Evict fail. The record is still written.
	ReadOnly bool
	// InfoHash, when not zero, is stored in the record and a record with another hash is
	// ignored. The record also carries a digest of the piece hashes and file layout, so a
	// zero InfoHash is safe too.
	InfoHash torrentfile.Hash
	// Logger receives notes about ignored records and on-disk checks; nil discards them.
	Logger *slog.Logger
	// Progress, when not nil, is called as Open hashes pieces found on disk that the record
	// does not list (done of total), from several goroutines but never at once.
	Progress func(done, total int)
	// WritebackEvery, when positive, starts the kernel writing a file's dirty pages to disk
	// (without waiting) each time this many bytes were written to it. A download, which ends
	// by waiting for every byte to reach the disk, then overlaps that work with the transfer,
	// and no Sync has much to flush: a long fsync makes the filesystem's journal hold up
	// the writes of new pieces. Zero leaves writeback to the kernel's own timing (a mount:
	// its reads never wait for the disk).
	WritebackEvery int64
	// InlineIO makes the writes to files on a local disk filesystem raw system calls that
	// keep the goroutine's processor (see rawPwritev): a download's writes cost about a tenth
	// less CPU. A write that waits for the disk (the kernel throttling writers that are ahead
	// of it) then holds its processor, so a mount, whose reads must not wait behind a writer,
	// leaves it off. (Reads of such files always keep their processor while the page cache
	// holds the bytes, and only then: readAt.)
	InlineIO bool
}

// Storage is one torrent's bytes in the torrent's own file layout under a data folder
// (sparse files), plus a completion record listing the verified pieces.
//
// WritePiece, ReadAt, ReadBlock, ReadPiece, Verified and File may be called from many
// goroutines at once. A piece must not be written while it is being evicted.
type Storage struct {
	info   *torrentfile.Info
	opts   Options
	log    *slog.Logger
	layout torrentfile.Hash
	files  []storageFile

	// bits is the verified set (bit i%64 of word i/64); updated with atomic Or/And so that
	// Verified never locks. A bit is set only after the piece's bytes are written.
	bits  []atomic.Uint64
	count atomic.Int64
	// changed is set whenever the verified set or a file's content changes, so Sync knows
	// the record is stale.
	changed atomic.Bool

	// syncMu serialises Sync, Evict and Close; it guards recorded and the stamps.
	syncMu   sync.Mutex
	recorded []uint64 // the verified set the durable record claims
	closed   bool
}

// storageFile is the state of one file of the layout.
type storageFile struct {
	path string // absolute path under DataDir

	mu   sync.Mutex // serialises opening
	r, w atomic.Pointer[os.File]
	// local is set before r or w is first stored when the file is on a local disk
	// (onLocalDisk): its reads from the page cache, and with Options.InlineIO its writes,
	// are raw system calls.
	local atomic.Bool
	// dirty is set after a write or hole punch, before the piece's bit changes; Sync clears it
	// and fsyncs the file.
	dirty    atomic.Bool
	verified atomic.Int64 // verified bytes of this file
	// unflushed counts bytes written since writeback was last started (Options.WritebackEvery).
	unflushed atomic.Int64
	stamp     fileStamp // size and mtime at the last record write (guarded by Storage.syncMu)
}

// Open opens the storage of a torrent. It trusts the completion record for the pieces it
// lists whose files are unchanged, and hashes pieces the record does not list whose bytes are
// already on disk, keeping those that verify. Unless ReadOnly, it creates DataDir and the
// torrent's zero-length files.
func Open(info *torrentfile.Info, opts Options) (*Storage, error) {
	if err := validateInfo(info); err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	if opts.DataDir == "" || opts.RecordPath == "" {
		return nil, errors.New("open storage: DataDir and RecordPath are required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	opts.DataDir = dataDir
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := info.NumPieces()
	s := &Storage{
		info:     info,
		opts:     opts,
		log:      log,
		layout:   layoutDigest(info),
		files:    make([]storageFile, len(info.Files)),
		bits:     make([]atomic.Uint64, (n+63)/64),
		recorded: make([]uint64, (n+63)/64),
	}
	for i, f := range info.Files {
		p, err := joinInside(dataDir, f.Path)
		if err != nil {
			return nil, fmt.Errorf("open storage: file %d: %w", i, err)
		}
		s.files[i].path = p
		s.files[i].stamp = fileStamp{Size: -1}
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
	}
	// Check every path for symlinks and stat what exists.
	dirOK := map[string]bool{}
	for i := range s.files {
		f := &info.Files[i]
		if f.Padding {
			continue
		}
		st, err := s.statFile(i, dirOK)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("open storage: %w", err)
		}
		if st == nil && f.Length == 0 && !opts.ReadOnly {
			if _, err := s.writer(i); err != nil {
				s.closeFiles()
				return nil, fmt.Errorf("open storage: create %s: %w", s.files[i].path, unwrapPath(err))
			}
			if st, err = os.Lstat(s.files[i].path); err != nil {
				s.closeFiles()
				return nil, fmt.Errorf("open storage: %w", err)
			}
		}
		if st != nil {
			s.files[i].stamp = fileStamp{Size: st.Size(), MTime: modTimeNs(st)}
		}
	}
	if err := s.resume(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("open storage: %w", err)
	}
	return s, nil
}

// validateInfo checks that the layout is consistent, so that later arithmetic can trust it.
func validateInfo(info *torrentfile.Info) error {
	if info == nil {
		return errors.New("nil info")
	}
	if info.PieceLength <= 0 {
		return fmt.Errorf("bad piece length %d", info.PieceLength)
	}
	if info.PieceLength > 1<<30 {
		return fmt.Errorf("piece length %d is too large", info.PieceLength)
	}
	want := (info.Length + info.PieceLength - 1) / info.PieceLength
	if int64(len(info.Pieces)) != want {
		return fmt.Errorf("%d piece hashes for %d bytes in pieces of %d", len(info.Pieces), info.Length, info.PieceLength)
	}
	var off int64
	for i, f := range info.Files {
		if f.Offset != off || f.Length < 0 {
			return fmt.Errorf("file %d: offset %d length %d, want offset %d", i, f.Offset, f.Length, off)
		}
		if len(f.Path) == 0 {
			return fmt.Errorf("file %d: empty path", i)
		}
		off += f.Length
	}
	if off != info.Length {
		return fmt.Errorf("files hold %d bytes, info says %d", off, info.Length)
	}
	return nil
}

// joinInside joins path elements under dir and refuses any element that could leave it.
func joinInside(dir string, elems []string) (string, error) {
	if len(elems) == 0 {
		return "", errors.New("empty path")
	}
	for _, e := range elems {
		if e == "" || e == "." || e == ".." || strings.ContainsAny(e, "/\x00") ||
			(filepath.Separator != '/' && strings.ContainsRune(e, filepath.Separator)) {
			return "", fmt.Errorf("unsafe path element %q in %q", e, strings.Join(elems, "/"))
		}
	}
	p := filepath.Join(append([]string{dir}, elems...)...)
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("path %q escapes %s", strings.Join(elems, "/"), dir)
	}
	return p, nil
}

// statFile checks that no component of file i's path below DataDir is a symlink or
// otherwise unusable, and returns the file's FileInfo, or nil when it does not exist.
// dirOK caches folders already checked.
func (s *Storage) statFile(i int, dirOK map[string]bool) (os.FileInfo, error) {
	p := s.files[i].path
	rel, _ := filepath.Rel(s.opts.DataDir, p)
	elems := strings.Split(rel, string(filepath.Separator))
	cur := s.opts.DataDir
	for _, e := range elems[:len(elems)-1] {
		cur = filepath.Join(cur, e)
		if dirOK[cur] {
			continue
		}
		st, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("refusing %s: %s is a symlink", p, cur)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("refusing %s: %s is not a folder", p, cur)
		}
		if dirOK != nil {
			dirOK[cur] = true
		}
	}
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("refusing %s: it is a symlink", p)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("refusing %s: not a regular file", p)
	}
	return st, nil
}

// makeParents creates the folders of file i below DataDir (0755), refusing symlinks.
func (s *Storage) makeParents(i int) error {
	p := s.files[i].path
	rel, _ := filepath.Rel(s.opts.DataDir, p)
	elems := strings.Split(rel, string(filepath.Separator))
	cur := s.opts.DataDir
	for _, e := range elems[:len(elems)-1] {
		cur = filepath.Join(cur, e)
		err := os.Mkdir(cur, 0o755)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		st, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("refusing %s: %s is a symlink", p, cur)
		}
		if !st.IsDir() {
			return fmt.Errorf("refusing %s: %s is not a folder", p, cur)
		}
	}
	return nil
}

// writer returns file i opened for writing, creating it (sparse, at its final size) on
// first use.
func (s *Storage) writer(i int) (*os.File, error) {
	if w := s.files[i].w.Load(); w != nil {
		return w, nil
	}
	return s.openWriter(i)
}

func (s *Storage) openWriter(i int) (*os.File, error) {
	sf := &s.files[i]
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if w := sf.w.Load(); w != nil {
		return w, nil
	}
	if s.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := s.makeParents(i); err != nil {
		return nil, err
	}
	w, err := os.OpenFile(sf.path, os.O_RDWR|os.O_CREATE|oNoFollow, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := w.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", sf.path)
	}
	if err == nil && st.Size() != s.info.Files[i].Length {
		err = w.Truncate(s.info.Files[i].Length)
		sf.dirty.Store(true)
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	s.checkLocal(sf, w)
	sf.w.Store(w)
	return w, nil
}

// Preallocate reserves the disk space of file i (creating it at its full size) so that its
// writes fill blocks already allocated: the filesystem does less work per write, the file is
// not fragmented, and a disk too small fails now rather than in the middle. Bytes already in
// the file are kept. Pad files are skipped, and so are filesystems that cannot reserve
// space, whose files stay sparse.
func (s *Storage) Preallocate(i int) error {
	f := &s.info.Files[i]
	if f.Padding || f.Length == 0 {
		return nil
	}
	w, err := s.writer(i)
	if err != nil {
		return fmt.Errorf("reserve space for %s: %w", s.files[i].path, unwrapPath(err))
	}
	if err := allocate(w, f.Length); err != nil {
		return fmt.Errorf("reserve %d bytes for %s: %w", f.Length, s.files[i].path, err)
	}
	return nil
}

// reader returns file i opened read-only.
func (s *Storage) reader(i int) (*os.File, error) {
	if r := s.files[i].r.Load(); r != nil {
		return r, nil
	}
	return s.openReader(i)
}

func (s *Storage) openReader(i int) (*os.File, error) {
	sf := &s.files[i]
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if r := sf.r.Load(); r != nil {
		return r, nil
	}
	if _, err := s.statFile(i, nil); err != nil {
		return nil, err
	}
	r, err := os.OpenFile(sf.path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, err
	}
	s.checkLocal(sf, r)
	sf.r.Store(r)
	return r, nil
}

// checkLocal decides, when f is the first of sf's files opened, whether it is on a local
// disk. Called with sf.mu held.
func (s *Storage) checkLocal(sf *storageFile, f *os.File) {
	if sf.r.Load() == nil && sf.w.Load() == nil {
		sf.local.Store(onLocalDisk(f))
	}
}

// inlineWrites reports whether writes to file fi are raw system calls (Options.InlineIO).
func (s *Storage) inlineWrites(fi int) bool { return s.opts.InlineIO && s.files[fi].local.Load() }

// unwrapPath strips an *fs.PathError so that messages name the file once.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Info returns the torrent layout the storage was opened with.
func (s *Storage) Info() *torrentfile.Info { return s.info }

// FilePath returns the path of file i on disk (it may not exist yet).
func (s *Storage) FilePath(i int) string { return s.files[i].path }

// Verified reports whether piece i is verified and its bytes are readable.
func (s *Storage) Verified(i int) bool {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return false
	}
	return s.bits[i>>6].Load()&(1<<(uint(i)&63)) != 0
}

// VerifiedCount returns the number of verified pieces.
func (s *Storage) VerifiedCount() int { return int(s.count.Load()) }

// VerifiedBitfield returns a copy of the verified set in BEP 3 bit order (the high bit of the
// first byte is piece 0).
func (s *Storage) VerifiedBitfield() []byte {
	words := make([]uint64, len(s.bits))
	for i := range s.bits {
		words[i] = s.bits[i].Load()
	}
	return wordsToBitfield(words, s.info.NumPieces())
}

// VerifiedBytesInFile returns how many bytes of file i lie in verified pieces.
func (s *Storage) VerifiedBytesInFile(i int) int64 {
	if uint(i) >= uint(len(s.files)) {
		return 0
	}
	return s.files[i].verified.Load()
}

// VerifiedBytes returns how many bytes of the torrent lie in verified pieces.
func (s *Storage) VerifiedBytes() int64 {
	var n int64
	for i := range s.files {
		n += s.files[i].verified.Load()
	}
	return n
}

// setBit marks piece i verified; it reports whether the bit was clear.
func (s *Storage) setBit(i int) bool {
	m := uint64(1) << (uint(i) & 63)
	if s.bits[i>>6].Or(m)&m != 0 {
		return false
	}
	s.count.Add(1)
	s.addFileBytes(i, 1)
	s.changed.Store(true)
	return true
}

// clearBit marks piece i unverified; it reports whether the bit was set.
func (s *Storage) clearBit(i int) bool {
	m := uint64(1) << (uint(i) & 63)
	if s.bits[i>>6].And(^m)&m == 0 {
		return false
	}
	s.count.Add(-1)
	s.addFileBytes(i, -1)
	s.changed.Store(true)
	return true
}

// addFileBytes adds sign times piece i's share of each file to the files' verified counts.
func (s *Storage) addFileBytes(i int, sign int64) {
	off := s.info.PieceOffset(i)
	end := off + s.info.PieceSize(i)
	files := s.info.Files
	for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
		f := &files[fi]
		lo, hi := max(off, f.Offset), min(end, f.Offset+f.Length)
		if hi > lo {
			s.files[fi].verified.Add(sign * (hi - lo))
		}
	}
}

// WritePiece writes piece i, whose data the caller has already verified against its SHA-1,
// into the files it spans (skipping pad files, which are never created on disk), then marks
// it verified. The piece is durable, and listed in the record, only after the next Sync.
// Writing a piece that is already verified does nothing.
func (s *Storage) WritePiece(i int, data []byte) error {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return fmt.Errorf("write piece %d: out of range (%d pieces)", i, len(s.info.Pieces))
	}
	size := s.info.PieceSize(i)
	if int64(len(data)) != size {
		return fmt.Errorf("write piece %d: %d bytes, want %d", i, len(data), size)
	}
	if s.Verified(i) {
		return nil
	}
	if err := s.writeRange(data, s.info.PieceOffset(i)); err != nil {
		return fmt.Errorf("write piece %d: %w", i, err)
	}
	s.setBit(i)
	return nil
}

// WriteBlock writes bytes of piece i, not verified yet, at begin within the piece: a block as
// it arrives from a peer, so that no piece has to wait whole in memory. The bytes count for
// nothing (no read, upload or record sees them) until VerifyPiece accepts the piece. A
// verified piece is never written: its bytes stay as they are. The caller must not verify
// piece i while a WriteBlock of it is in flight.
func (s *Storage) WriteBlock(i, begin int, data []byte) error {
	return s.WriteBlocks(i, begin, [][]byte{data})
}

// WriteBlocks is WriteBlock for consecutive blocks of piece i, the first at begin: one
// vectored write (pwritev) when they lie in one file, which costs the kernel one take of the
// file's lock instead of one a block.
func (s *Storage) WriteBlocks(i, begin int, blocks [][]byte) error {
	var n int64
	for _, b := range blocks {
		n += int64(len(b))
	}
	if err := s.checkWrite(i, begin, n); err != nil {
		return fmt.Errorf("write blocks of piece %d: %w", i, err)
	}
	if n == 0 {
		return nil
	}
	off := s.info.PieceOffset(i) + int64(begin)
	fi := s.info.FileAt(off)
	if f := &s.info.Files[fi]; len(blocks) == 1 || f.Padding || off+n > f.Offset+f.Length {
		// One block, or across a file boundary or into a pad file: block by block.
		for _, b := range blocks {
			if err := s.writeRange(b, off); err != nil {
				return fmt.Errorf("write blocks of piece %d: %w", i, err)
			}
			off += int64(len(b))
		}
		return nil
	}
	w, err := s.writer(fi)
	if err != nil {
		return fmt.Errorf("write blocks of piece %d: %s: %w", i, s.files[fi].path, unwrapPath(err))
	}
	if err := writeVectorAt(w, s.inlineWrites(fi), blocks, off-s.info.Files[fi].Offset); err != nil {
		return fmt.Errorf("write blocks of piece %d: %s: %w", i, s.files[fi].path, unwrapPath(err))
	}
	s.wrote(fi, w, n)
	return nil
}

// checkWrite refuses a write of n bytes at begin of piece i outside the piece, or into a
// verified piece.
func (s *Storage) checkWrite(i, begin int, n int64) error {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return fmt.Errorf("out of range (%d pieces)", len(s.info.Pieces))
	}
	if begin < 0 || int64(begin)+n > s.info.PieceSize(i) {
		return fmt.Errorf("range %d+%d outside the piece (%d bytes)", begin, n, s.info.PieceSize(i))
	}
	if s.Verified(i) {
		return errors.New("the piece is verified already")
	}
	return nil
}

// VerifyPiece hashes piece i as it stands on disk, reading it through buf (any length; it is
// only scratch space, so a piece of any size costs len(buf) of memory), and marks it verified
// when its SHA-1 matches the torrent's. It returns whether it matched; a read error is
// returned as such (the piece stays unverified).
func (s *Storage) VerifyPiece(i int, buf []byte) (bool, error) {
	return s.VerifyPieceFrom(i, sha1.New(), 0, buf)
}

// VerifyPieceFrom is VerifyPiece for a piece whose first hashed bytes the caller already fed
// into h, a SHA-1 (for example from blocks hashed in memory as they were written): only the
// rest of the piece is read back from disk. The caller must have written exactly those bytes
// to the piece (WriteBlock), so that what is marked verified is what is on disk.
func (s *Storage) VerifyPieceFrom(i int, h hash.Hash, hashed int64, buf []byte) (bool, error) {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return false, fmt.Errorf("verify piece %d: out of range (%d pieces)", i, len(s.info.Pieces))
	}
	if hashed < 0 || hashed > s.info.PieceSize(i) {
		return false, fmt.Errorf("verify piece %d: %d bytes hashed of %d", i, hashed, s.info.PieceSize(i))
	}
	if len(buf) == 0 {
		buf = make([]byte, 64<<10)
	}
	if err := s.hashRange(h, s.info.PieceOffset(i)+hashed, s.info.PieceSize(i)-hashed, buf); err != nil {
		return false, fmt.Errorf("verify piece %d: %w", i, err)
	}
	var sum torrentfile.Hash
	h.Sum(sum[:0])
	if sum != s.info.Pieces[i] {
		return false, nil
	}
	s.setBit(i)
	return true, nil
}

// HashPieceRange feeds bytes [from, to) of piece i, as written (verified or not), into h,
// reading them through buf (any length; nil allocates one). The bytes go nowhere else: this
// lets a caller hash a piece ahead of VerifyPieceFrom while its blocks arrive, without any
// unverified byte being returned.
func (s *Storage) HashPieceRange(i int, h hash.Hash, from, to int64, buf []byte) error {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return fmt.Errorf("hash piece %d: out of range (%d pieces)", i, len(s.info.Pieces))
	}
	if from < 0 || from > to || to > s.info.PieceSize(i) {
		return fmt.Errorf("hash piece %d: range %d-%d outside the piece (%d bytes)", i, from, to, s.info.PieceSize(i))
	}
	if len(buf) == 0 {
		buf = make([]byte, min(to-from, 64<<10))
	}
	if err := s.hashRange(h, s.info.PieceOffset(i)+from, to-from, buf); err != nil {
		return fmt.Errorf("hash piece %d: %w", i, err)
	}
	return nil
}

// hashRange feeds n bytes at torrent offset off into h through buf.
func (s *Storage) hashRange(h hash.Hash, off, n int64, buf []byte) error {
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		if _, err := s.readRange(chunk, off); err != nil {
			return err
		}
		h.Write(chunk)
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}

// writeRange writes data at torrent offset off into the files it spans, skipping pad files
// (never created on disk), and starts the kernel's writeback every WritebackEvery bytes.
func (s *Storage) writeRange(data []byte, off int64) error {
	end := off + int64(len(data))
	files := s.info.Files
	for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
		f := &files[fi]
		if f.Padding || f.Length == 0 {
			continue
		}
		lo, hi := max(off, f.Offset), min(end, f.Offset+f.Length)
		if hi <= lo {
			continue
		}
		w, err := s.writer(fi)
		if err != nil {
			return fmt.Errorf("%s: %w", s.files[fi].path, unwrapPath(err))
		}
		if err := writeVectorAt(w, s.inlineWrites(fi), [][]byte{data[lo-off : hi-off]}, lo-f.Offset); err != nil {
			return fmt.Errorf("%s: %w", s.files[fi].path, unwrapPath(err))
		}
		s.wrote(fi, w, hi-lo)
	}
	return nil
}

// wrote records n bytes written into file fi (open for writing as w): the file is dirty, and
// the kernel's writeback starts every WritebackEvery bytes.
func (s *Storage) wrote(fi int, w *os.File, n int64) {
	sf := &s.files[fi]
	sf.dirty.Store(true)
	if every := s.opts.WritebackEvery; every > 0 && sf.unflushed.Add(n) >= every {
		sf.unflushed.Store(0)
		// Only advice: the bytes are written, and Sync still makes them durable.
		if err := startWriteback(w); err != nil {
			s.log.Debug("start writeback", "file", sf.path, "err", unwrapPath(err))
		}
	}
}

// ReadAt reads len(p) bytes at torrent offset off from the files on disk; pad files read as
// zeros. It does not check that the bytes are verified (see Verified). Reading a file that
// does not exist yet is an error.
func (s *Storage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	length := s.info.Length
	if off >= length {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	short := false
	if int64(len(p)) > length-off {
		p = p[:length-off]
		short = true
	}
	n, err := s.readRange(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// readRange reads exactly len(p) bytes at off, which lie inside the torrent.
func (s *Storage) readRange(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	files := s.info.Files
	n := 0
	for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
		f := &files[fi]
		if f.Length == 0 {
			continue
		}
		lo, hi := max(off, f.Offset), min(end, f.Offset+f.Length)
		seg := p[lo-off : hi-off]
		if f.Padding {
			clear(seg)
			n += len(seg)
			continue
		}
		r, err := s.reader(fi)
		if err != nil {
			return n, fmt.Errorf("read %s: %w", s.files[fi].path, unwrapPath(err))
		}
		m, err := readAt(r, s.files[fi].local.Load(), seg, lo-f.Offset)
		n += m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the file is shorter than the layout says
			}
			return n, fmt.Errorf("read %s at %d: %w", s.files[fi].path, lo-f.Offset, unwrapPath(err))
		}
	}
	return n, nil
}

// ReadPiece reads piece i into buf, growing it when it is too small, and returns the piece's
// bytes. It does not check that the piece is verified.
func (s *Storage) ReadPiece(i int, buf []byte) ([]byte, error) {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return buf, fmt.Errorf("read piece %d: out of range (%d pieces)", i, len(s.info.Pieces))
	}
	size := int(s.info.PieceSize(i))
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := s.readRange(buf, s.info.PieceOffset(i)); err != nil {
		return buf, fmt.Errorf("read piece %d: %w", i, err)
	}
	return buf, nil
}

// ReadBlock reads len(p) bytes of verified piece i starting at begin within the piece, for
// uploading a block to a peer. It fails with ErrNotVerified for an unverified piece.
func (s *Storage) ReadBlock(i int, begin int, p []byte) error {
	if uint(i) >= uint(len(s.info.Pieces)) {
		return fmt.Errorf("read block of piece %d: out of range (%d pieces)", i, len(s.info.Pieces))
	}
	if begin < 0 || int64(begin)+int64(len(p)) > s.info.PieceSize(i) {
		return fmt.Errorf("read block of piece %d: range %d+%d outside the piece (%d bytes)", i, begin, len(p), s.info.PieceSize(i))
	}
	if !s.Verified(i) {
		return fmt.Errorf("read block of piece %d: %w", i, ErrNotVerified)
	}
	if _, err := s.readRange(p, s.info.PieceOffset(i)+int64(begin)); err != nil {
		return fmt.Errorf("read block of piece %d: %w", i, err)
	}
	return nil
}

// File returns a read-only descriptor of file i (for zero-copy reads such as FUSE's
// ReadResultFd). It is cached and closed by Close; callers must not close it.
func (s *Storage) File(i int) (*os.File, error) {
	if uint(i) >= uint(len(s.files)) {
		return nil, fmt.Errorf("file %d: out of range (%d files)", i, len(s.files))
	}
	if s.info.Files[i].Padding {
		return nil, fmt.Errorf("file %d is a pad file", i)
	}
	r, err := s.reader(i)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.files[i].path, unwrapPath(err))
	}
	return r, nil
}

// Sync fsyncs the files written since the last Sync and then atomically rewrites the record
// (temporary file, fsync, rename, fsync of the folder), so the record only ever lists pieces
// whose bytes are on disk. It does nothing when nothing changed.
func (s *Storage) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.closed {
		return errors.New("sync: storage is closed")
	}
	return s.syncLocked()
}

func (s *Storage) syncLocked() error {
	changed := s.changed.Swap(false)
	// Snapshot the set before the fsyncs: every piece in it was written (and its file marked
	// dirty) before its bit was set, so the fsyncs below cover it.
	snap := make([]uint64, len(s.bits))
	for i := range s.bits {
		snap[i] = s.bits[i].Load()
	}
	var errs []error
	for i := range s.files {
		sf := &s.files[i]
		if !sf.dirty.Swap(false) {
			continue
		}
		changed = true
		f := sf.w.Load()
		if f == nil {
			f = sf.r.Load()
		}
		var err error
		if f == nil {
			f, err = s.reader(i)
		}
		if err == nil {
			err = f.Sync()
		}
		var st os.FileInfo
		if err == nil {
			st, err = f.Stat()
		}
		if err != nil {
			sf.dirty.Store(true)
			errs = append(errs, fmt.Errorf("fsync %s: %w", sf.path, unwrapPath(err)))
			continue
		}
		sf.stamp = fileStamp{Size: st.Size(), MTime: modTimeNs(st)}
	}
	if len(errs) > 0 {
		s.changed.Store(true)
		return fmt.Errorf("sync: %w", errors.Join(errs...))
	}
	if !changed {
		return nil
	}
	rec := &record{
		InfoHash:    s.opts.InfoHash,
		Layout:      s.layout,
		PieceLength: s.info.PieceLength,
		TotalLength: s.info.Length,
		NumPieces:   s.info.NumPieces(),
		Files:       make([]fileStamp, len(s.files)),
		Bitfield:    wordsToBitfield(snap, s.info.NumPieces()),
	}
	for i := range s.files {
		rec.Files[i] = s.files[i].stamp
	}
	if err := writeFileAtomic(s.opts.RecordPath, rec.marshal()); err != nil {
		s.changed.Store(true)
		return fmt.Errorf("sync: write record %s: %w", s.opts.RecordPath, unwrapPath(err))
	}
	s.recorded = snap
	return nil
}

// Unverify clears piece i's verified bit at once, so that no read, upload or record takes the
// piece from now on; its bytes stay on disk until EvictPieces punches them. A caller that
// decides evictions under its own lock calls this under that lock, then EvictPieces outside.
func (s *Storage) Unverify(i int) {
	if uint(i) < uint(len(s.info.Pieces)) {
		s.clearBit(i)
	}
}

// Evict drops piece i: see EvictPieces.
func (s *Storage) Evict(i int) error {
	return s.EvictPieces([]int{i})
}

// EvictPieces drops pieces: it clears their bits (if Unverify has not), rewrites the record if
// it listed any of them, then punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE) over each piece's
// bytes in each file, so the disk space is freed. Pieces never overlap, so no other piece loses
// bytes. On an error, the pieces whose bytes are still whole are verified again (Verified tells
// which); a piece whose hole was begun stays unverified.
func (s *Storage) EvictPieces(pieces []int) (err error) {
	for _, i := range pieces {
		if uint(i) >= uint(len(s.info.Pieces)) {
			return fmt.Errorf("evict piece %d: out of range (%d pieces)", i, len(s.info.Pieces))
		}
	}
	punched := 0 // pieces[:punched] lost (or began to lose) their bytes
	defer func() {
		if err != nil {
			for _, i := range pieces[punched:] {
				s.setBit(i)
			}
		}
	}()
	if s.opts.ReadOnly {
		return fmt.Errorf("evict: %w", ErrReadOnly)
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.closed {
		return errors.New("evict: storage is closed")
	}
	listed := false
	for _, i := range pieces {
		s.clearBit(i)
		if s.recorded[i>>6]&(1<<(uint(i)&63)) != 0 {
			listed = true
		}
	}
	// The record must stop listing the pieces before their bytes go, or a crash in between
	// would leave it claiming zeros.
	if listed {
		if err := s.syncLocked(); err != nil {
			return fmt.Errorf("evict: %w", err)
		}
	}
	files := s.info.Files
	for k, i := range pieces {
		punched = k + 1
		began := false // a hole was punched in some file of this piece
		off := s.info.PieceOffset(i)
		end := off + s.info.PieceSize(i)
		for fi := s.info.FileAt(off); fi >= 0 && fi < len(files) && files[fi].Offset < end; fi++ {
			f := &files[fi]
			if f.Padding || f.Length == 0 {
				continue
			}
			sf := &s.files[fi]
			w := sf.w.Load()
			if w == nil {
				if st, err := s.statFile(fi, nil); err != nil || st == nil {
					continue // nothing on disk to free
				}
				var err error
				if w, err = s.writer(fi); err != nil {
					if !began {
						punched = k // the piece is still whole
					}
					return fmt.Errorf("evict piece %d: %s: %w", i, sf.path, unwrapPath(err))
				}
			}
			lo, hi := max(off, f.Offset), min(end, f.Offset+f.Length)
			began = true
			if err := punchHole(w, lo-f.Offset, hi-lo); err != nil {
				return fmt.Errorf("evict piece %d: punch hole in %s: %w", i, sf.path, err)
			}
			sf.dirty.Store(true) // the next Sync records the new mtime
		}
	}
	return nil
}

// DiskUsage returns the bytes the data files occupy on disk (st_blocks*512).
func (s *Storage) DiskUsage() (int64, error) {
	var total int64
	for i := range s.files {
		if s.info.Files[i].Padding {
			continue
		}
		var st os.FileInfo
		var err error
		if f := s.files[i].w.Load(); f != nil {
			st, err = f.Stat()
		} else if f := s.files[i].r.Load(); f != nil {
			st, err = f.Stat()
		} else {
			st, err = os.Lstat(s.files[i].path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		if err != nil {
			return total, fmt.Errorf("disk usage: %w", err)
		}
		total += allocatedBytes(st)
	}
	return total, nil
}

// Close syncs (see Sync) and closes the files. The Storage must not be used afterwards.
func (s *Storage) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.closed {
		return nil
	}
	err := s.syncLocked()
	s.closed = true
	return errors.Join(err, s.closeFiles())
}

func (s *Storage) closeFiles() error {
	var errs []error
	for i := range s.files {
		if f := s.files[i].w.Swap(nil); f != nil {
			errs = append(errs, f.Close())
		}
		if f := s.files[i].r.Swap(nil); f != nil {
			errs = append(errs, f.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// wordsToBitfield converts the internal word set to a BEP 3 bitfield of n pieces.
func wordsToBitfield(words []uint64, n int) []byte {
	b := make([]byte, (n+7)/8)
	for i := range b {
		w := words[i>>3] >> (uint(i&7) * 8)
		b[i] = bits.Reverse8(byte(w))
	}
	return b
}

// bitfieldHas reports whether BEP 3 bitfield b has piece i.
func bitfieldHas(b []byte, i int) bool {
	return i>>3 < len(b) && b[i>>3]&(0x80>>(uint(i)&7)) != 0
}
