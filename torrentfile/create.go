package torrentfile

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// Piece length bounds used when CreateOptions.PieceLength is 0.
const (
	minAutoPieceLength = 16 << 10
	maxAutoPieceLength = 16 << 20
	targetPieces       = 2000
)

// readChunk is the least the hashing reader reads at a time.
const readChunk = 4 << 20

// CreateOptions configures Create.
type CreateOptions struct {
	// Trackers lists announce URLs by tier (BEP 12).
	Trackers [][]string
	// WebSeeds lists url-list (BEP 19) URLs.
	WebSeeds []string
	// PieceLength is the piece size in bytes, a power of two of at least 16 KiB; 0 picks one
	// between 16 KiB and 16 MiB giving about 1,000 to 2,000 pieces.
	PieceLength int64
	// Private sets the private flag (BEP 27).
	Private bool
	// Comment, Source and CreatedBy fill the fields of the same names; Source is inside the
	// info dictionary, so it changes the info hash. An empty CreatedBy writes "gotfs".
	Comment, Source, CreatedBy string
	// NoDate leaves out the creation date.
	NoDate bool
	// Name overrides the torrent's name (by default the base name of path).
	Name string
	// Progress, when set, is called from one goroutine as pieces are hashed.
	Progress func(done, total int64)
}

// createFile is one file found under the path given to Create.
type createFile struct {
	abs  string
	rel  []string
	size int64
}

// Create builds a torrent of the file or folder at path, hashing pieces on every core. It
// returns the parsed metainfo and the encoded .torrent file. The info dictionary matches what
// mktorrent 1.1 writes for the same input and options: files sorted by their path's bytes,
// symlinks followed, special files (FIFOs, sockets, devices) skipped, empty files kept.
// Dangling symlinks are skipped (mktorrent stops on them).
func Create(ctx context.Context, path string, opts CreateOptions) (*Metainfo, []byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("create torrent: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(path))
	}
	if name == "" || name == "." || name == ".." || name == string(filepath.Separator) {
		return nil, nil, fmt.Errorf("create torrent: cannot name a torrent after %q; set a name", path)
	}
	var files []createFile
	multi := st.IsDir()
	if multi {
		if files, err = walk(ctx, path); err != nil {
			return nil, nil, fmt.Errorf("create torrent: %w", err)
		}
	} else if st.Mode().IsRegular() {
		files = []createFile{{abs: path, rel: []string{name}, size: st.Size()}}
	} else {
		return nil, nil, fmt.Errorf("create torrent: %s is not a regular file or a folder", path)
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	if total == 0 {
		return nil, nil, fmt.Errorf("create torrent: %s holds no data", path)
	}
	pl := opts.PieceLength
	if pl == 0 {
		pl = AutoPieceLength(total)
	}
	if pl < minAutoPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
		return nil, nil, fmt.Errorf("create torrent: piece length %d is not a power of two from 16 KiB to 512 MiB", pl)
	}
	if (total+pl-1)/pl > MaxPieces {
		return nil, nil, fmt.Errorf("create torrent: %d bytes need more than %d pieces of %d bytes; use larger pieces", total, MaxPieces, pl)
	}

	pieces, err := hashFiles(ctx, files, total, pl, opts.Progress)
	if err != nil {
		return nil, nil, fmt.Errorf("create torrent: %w", err)
	}

	info := map[string]any{
		"name":         name,
		"piece length": pl,
		"pieces":       pieces,
	}
	if multi {
		list := make([]any, len(files))
		for i, f := range files {
			list[i] = map[string]any{"length": f.size, "path": f.rel}
		}
		info["files"] = list
	} else {
		info["length"] = total
	}
	if opts.Private {
		info["private"] = int64(1)
	}
	if opts.Source != "" {
		info["source"] = opts.Source
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, nil, fmt.Errorf("create torrent: %w", err)
	}
	doc := map[string]any{}
	var all []string
	var tiers []any
	for _, tier := range opts.Trackers {
		var t []any
		for _, u := range tier {
			if u = strings.TrimSpace(u); u != "" {
				t = append(t, u)
				all = append(all, u)
			}
		}
		if len(t) > 0 {
			tiers = append(tiers, t)
		}
	}
	if len(all) > 0 {
		doc["announce"] = all[0]
	}
	if len(all) > 1 {
		doc["announce-list"] = tiers
	}
	if opts.Comment != "" {
		doc["comment"] = opts.Comment
	}
	createdBy := opts.CreatedBy
	if createdBy == "" {
		createdBy = "gotfs"
	}
	doc["created by"] = createdBy
	if !opts.NoDate {
		doc["creation date"] = time.Now().Unix()
	}
	switch len(opts.WebSeeds) {
	case 0:
	case 1:
		doc["url-list"] = opts.WebSeeds[0]
	default:
		doc["url-list"] = opts.WebSeeds
	}
	out, err := encodeWithInfo(doc, infoBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("create torrent: %w", err)
	}
	mi, err := ParseBytes(out)
	if err != nil {
		return nil, nil, fmt.Errorf("create torrent: result does not parse: %w", err)
	}
	return mi, out, nil
}

// encodeWithInfo encodes doc plus the key "info" holding the already-encoded infoBytes, keys
// in sorted order.
func encodeWithInfo(doc map[string]any, infoBytes []byte) ([]byte, error) {
	keys := make([]string, 0, len(doc)+1)
	for k := range doc {
		keys = append(keys, k)
	}
	keys = append(keys, "info")
	slices.Sort(keys)
	out := []byte{'d'}
	for _, k := range keys {
		kb, err := bencode.Marshal(k)
		if err != nil {
			return nil, err
		}
		out = append(out, kb...)
		if k == "info" {
			out = append(out, infoBytes...)
			continue
		}
		vb, err := bencode.Marshal(doc[k])
		if err != nil {
			return nil, err
		}
		out = append(out, vb...)
	}
	return append(out, 'e'), nil
}

// AutoPieceLength returns the piece length Create picks for total bytes: the smallest power
// of two from 16 KiB to 16 MiB that gives at most 2,000 pieces.
func AutoPieceLength(total int64) int64 {
	pl := int64(minAutoPieceLength)
	for pl < maxAutoPieceLength && (total+pl-1)/pl > targetPieces {
		pl *= 2
	}
	return pl
}

// walk lists the regular files under root in mktorrent's order: sorted by the bytes of their
// relative path. Symlinks are followed (loops are broken); special files and dangling links are
// skipped.
func walk(ctx context.Context, root string) ([]createFile, error) {
	var out []createFile
	type dirID struct{ dev, ino uint64 }
	var visit func(dir string, rel []string, active []dirID) error
	visit = func(dir string, rel []string, active []dirID) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			id := dirID{uint64(sys.Dev), uint64(sys.Ino)}
			if slices.Contains(active, id) {
				return nil // a symlink loop
			}
			active = append(active, id)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			st, err := os.Stat(p) // follows symlinks, like mktorrent
			if errors.Is(err, fs.ErrNotExist) && e.Type()&fs.ModeSymlink != 0 {
				continue // dangling symlink
			}
			if err != nil {
				return err
			}
			r := append(slices.Clip(rel), e.Name())
			switch {
			case st.IsDir():
				if err := visit(p, r, active); err != nil {
					return err
				}
			case st.Mode().IsRegular():
				out = append(out, createFile{abs: p, rel: r, size: st.Size()})
			}
		}
		return nil
	}
	if err := visit(root, nil, nil); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b createFile) int {
		return strings.Compare(strings.Join(a.rel, "/"), strings.Join(b.rel, "/"))
	})
	return out, nil
}

// chunk is a run of whole pieces read from the files, to be hashed by a worker.
type chunk struct {
	first int // index of the first piece
	buf   []byte
}

// hashFiles returns the concatenated SHA-1 hashes of the pieces of the files laid end to end.
// One goroutine reads the files sequentially in large chunks; the other cores hash them.
func hashFiles(ctx context.Context, files []createFile, total, pl int64, progress func(done, total int64)) ([]byte, error) {
	numPieces := int((total + pl - 1) / pl)
	piecesPerChunk := int64(1)
	if pl < readChunk {
		piecesPerChunk = readChunk / pl
	}
	chunkSize := piecesPerChunk * pl
	workers := max(runtime.GOMAXPROCS(0), 1)

	out := make([]byte, numPieces*HashSize)
	g, ctx := errgroup.WithContext(ctx)
	free := make(chan []byte, workers+2)
	for range workers + 2 {
		free <- make([]byte, chunkSize)
	}
	jobs := make(chan chunk, workers)
	done := make(chan int64, workers+2)

	g.Go(func() error {
		defer close(jobs)
		r := &filesReader{files: files}
		defer r.Close()
		piece := 0
		for read := int64(0); read < total; {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			n := min(chunkSize, total-read)
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				return fmt.Errorf("read %s: %w", r.current(), err)
			}
			select {
			case jobs <- chunk{first: piece, buf: buf[:n]}:
			case <-ctx.Done():
				return ctx.Err()
			}
			read += n
			piece += int(piecesPerChunk)
		}
		if _, err := r.Read(make([]byte, 1)); err != io.EOF {
			return fmt.Errorf("%s grew while it was being hashed", r.current())
		}
		return nil
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			for c := range jobs {
				for off := int64(0); off < int64(len(c.buf)); off += pl {
					end := min(off+pl, int64(len(c.buf)))
					sum := sha1.Sum(c.buf[off:end])
					i := c.first + int(off/pl)
					copy(out[i*HashSize:], sum[:])
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				n := int64(len(c.buf))
				free <- c.buf[:cap(c.buf)]
				select {
				case done <- n:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	workersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(workersDone)
	}()
	// Report progress from this goroutine until the workers finish.
	var hashed int64
loop:
	for {
		select {
		case n := <-done:
			hashed += n
			if progress != nil {
				progress(hashed, total)
			}
		case <-workersDone:
			break loop
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// filesReader reads a list of files as one stream, checking each has the size it had when
// listed.
type filesReader struct {
	files []createFile
	i     int
	f     *os.File
	n     int64 // bytes read from f
}

func (r *filesReader) current() string {
	if r.i < len(r.files) {
		return r.files[r.i].abs
	}
	return r.files[len(r.files)-1].abs
}

func (r *filesReader) Read(p []byte) (int, error) {
	for r.i < len(r.files) {
		if r.f == nil {
			f, err := os.Open(r.files[r.i].abs)
			if err != nil {
				return 0, err
			}
			r.f, r.n = f, 0
		}
		want := r.files[r.i].size - r.n
		if want > 0 {
			n, err := r.f.Read(p[:min(int64(len(p)), want)])
			r.n += int64(n)
			if err == io.EOF {
				return n, fmt.Errorf("%s shrank while it was being hashed: %w", r.files[r.i].abs, io.ErrUnexpectedEOF)
			}
			return n, err
		}
		// Done with this file: it must not have grown.
		var one [1]byte
		if n, _ := r.f.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%s grew while it was being hashed", r.files[r.i].abs)
		}
		r.f.Close()
		r.f = nil
		r.i++
	}
	return 0, io.EOF
}

// Close closes the open file, if any.
func (r *filesReader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}
