// Package testswarm makes what the tests of fetch, fusefs and cmd/gotfs share: torrents of
// random files written to disk, their metainfo, and read-only storages to seed them from. It
// imports no engine package, so that fetch's own tests can use it; seeders themselves are in
// testswarm/seeder.
package testswarm

import (
	"bytes"
	"crypto/sha1"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/torrentfile"
)

// File is one file of a generated torrent; an empty Path makes a single-file torrent.
type File struct {
	Path []string // below the torrent's name
	Size int
	Pad  bool // a BEP 47 pad file (zeros, hidden, never written to disk)
}

// MakeTorrent writes random files under dir/name and returns a metainfo describing them; the
// same seed gives the same bytes and the same info hash.
func MakeTorrent(t testing.TB, dir, name string, files []File, pieceLen int64, seed uint64) *torrentfile.Metainfo {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	var all bytes.Buffer
	single := len(files) == 1 && len(files[0].Path) == 0
	info := torrentfile.Info{Name: name, PieceLength: pieceLen, MultiFile: !single}
	for _, f := range files {
		data := make([]byte, f.Size)
		if !f.Pad {
			rng.Read(data)
		}
		p := filepath.Join(append([]string{dir, name}, f.Path...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if !f.Pad {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		path := append([]string{name}, f.Path...)
		info.Files = append(info.Files, torrentfile.File{Path: path, Length: int64(f.Size), Offset: int64(all.Len()), Padding: f.Pad})
		all.Write(data)
	}
	info.Length = int64(all.Len())
	b := all.Bytes()
	for off := 0; off < len(b); off += int(pieceLen) {
		info.Pieces = append(info.Pieces, sha1.Sum(b[off:min(off+int(pieceLen), len(b))]))
	}
	mi := &torrentfile.Metainfo{Info: info, CreationDate: time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)}
	mi.InfoHash = sha1.Sum([]byte(name + string(rune(seed))))
	return mi
}

// Logger is the engine's logger in tests: silent, or every debug line on stderr when
// GOTFS_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("GOTFS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// OpenSeed opens the files of mi under dir read-only, every piece verified (it fails the test
// otherwise), and closes the storage when the test ends.
func OpenSeed(t testing.TB, mi *torrentfile.Metainfo, dir string) *cache.Storage {
	t.Helper()
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: dir, RecordPath: filepath.Join(t.TempDir(), "rec"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if st.VerifiedCount() != mi.Info.NumPieces() {
		t.Fatalf("seeder has %d of %d pieces", st.VerifiedCount(), mi.Info.NumPieces())
	}
	return st
}

// MakeVideoTorrent writes src/Movie/movie.mp4, 20 s of H.264 at 320x240 and 25 frames per
// second with a key frame every second, made by ffmpeg (the path given) with its index (moov)
// at the end as ffmpeg writes it by default (a player must read the end before it can play,
// and seeks by time), beside a small notes.txt, and returns the metainfo of the folder
// (16 KiB pieces).
func MakeVideoTorrent(t testing.TB, ffmpeg, src string) *torrentfile.Metainfo {
	t.Helper()
	dir := filepath.Join(src, "Movie")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=20:size=320x240:rate=25",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", filepath.Join(dir, "movie.mp4")).CombinedOutput(); err != nil {
		t.Fatalf("make a video: %v: %s", err, b)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("a note\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mi, _, err := torrentfile.Create(t.Context(), dir, torrentfile.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return mi
}
