package torrentfile

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gotfs/gotfs/internal/testenv"
)

func writeRandom(t testing.TB, path string, n int, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCreateMatchesMktorrent(t *testing.T) {
	mk := testenv.RequireBinary(t, "mktorrent")
	dir := t.TempDir()
	single := filepath.Join(dir, "single.bin")
	writeRandom(t, single, 100_000, 1)

	tree := filepath.Join(dir, "tree")
	writeRandom(t, filepath.Join(tree, "a", "b", "deep.dat"), 70_000, 2)
	writeRandom(t, filepath.Join(tree, "a-c"), 33_333, 3)
	writeRandom(t, filepath.Join(tree, "a.txt"), 5, 4)
	writeRandom(t, filepath.Join(tree, "B"), 1, 5)
	writeRandom(t, filepath.Join(tree, ".hidden"), 17, 6)
	writeRandom(t, filepath.Join(tree, "zero"), 0, 0)
	writeRandom(t, filepath.Join(tree, "sub", "zero2"), 0, 0)
	if err := os.Symlink("a.txt", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		target string
		exp    int // piece length exponent
		opts   CreateOptions
		args   []string
	}{
		{"single", single, 15, CreateOptions{}, nil},
		{"single-private-source", single, 16, CreateOptions{Private: true, Source: "SRC"}, []string{"-p", "-s", "SRC"}},
		{"tree", tree, 15, CreateOptions{}, nil},
		{"tree-private", tree, 17, CreateOptions{Private: true, Source: "x"}, []string{"-p", "-s", "x"}},
		{"tree-named", tree, 15, CreateOptions{Name: "other"}, []string{"-n", "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "mk.torrent")
			args := append([]string{"-l", strconv.Itoa(tt.exp), "-a", "http://127.0.0.1:1/announce", "-o", out}, tt.args...)
			args = append(args, tt.target)
			if b, err := exec.Command(mk, args...).CombinedOutput(); err != nil {
				t.Fatalf("mktorrent: %v\n%s", err, b)
			}
			want, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			opts := tt.opts
			opts.PieceLength = 1 << tt.exp
			opts.Trackers = [][]string{{"http://127.0.0.1:1/announce"}}
			mi, raw, err := Create(context.Background(), tt.target, opts)
			if err != nil {
				t.Fatal(err)
			}
			if mi.InfoHash != want.InfoHash {
				t.Errorf("info hash %x, mktorrent's %x\nours:       %q\nmktorrent's: %q", mi.InfoHash, want.InfoHash, short(mi.InfoBytes), short(want.InfoBytes))
			}
			again, err := ParseBytes(raw)
			if err != nil || again.InfoHash != mi.InfoHash {
				t.Errorf("re-parse: %v", err)
			}
			checkLayout(t, mi)
		})
	}
}

func short(b []byte) []byte {
	if i := bytes.Index(b, []byte("6:pieces")); i >= 0 {
		return b[:i]
	}
	return b
}

func TestCreateOptions(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeRandom(t, f, 1<<20+3, 7)
	var calls int
	var last int64
	mi, raw, err := Create(context.Background(), f, CreateOptions{
		Trackers:  [][]string{{"http://a/ann", "http://b/ann"}, {"udp://c:1"}},
		WebSeeds:  []string{"http://ws/"},
		Comment:   "c",
		CreatedBy: "me",
		NoDate:    true,
		Progress:  func(done, total int64) { calls++; last = done },
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != mi.Info.Length {
		t.Errorf("progress: %d calls, last %d", calls, last)
	}
	if len(mi.Trackers) != 2 || mi.Trackers[0][1] != "http://b/ann" || mi.Comment != "c" || mi.CreatedBy != "me" ||
		!mi.CreationDate.IsZero() || len(mi.WebSeeds) != 1 {
		t.Errorf("metainfo %+v", mi)
	}
	if mi.Info.PieceLength != 16<<10 || !bytes.Contains(raw, []byte("13:announce-list")) {
		t.Errorf("piece length %d", mi.Info.PieceLength)
	}
	// Hashes are right.
	data, _ := os.ReadFile(f)
	for i := range mi.Info.Pieces {
		off := mi.Info.PieceOffset(i)
		if sha1sum(data[off:off+mi.Info.PieceSize(i)]) != mi.Info.Pieces[i] {
			t.Fatalf("piece %d hash wrong", i)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Create(ctx, f, CreateOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Create: %v", err)
	}
	if _, _, err := Create(context.Background(), f, CreateOptions{PieceLength: 1000}); err == nil {
		t.Error("piece length 1000 accepted")
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if _, _, err := Create(context.Background(), empty, CreateOptions{}); err == nil {
		t.Error("empty folder accepted")
	}
}

func TestAutoPieceLength(t *testing.T) {
	for _, tt := range []struct{ total, want int64 }{
		{1, 16 << 10},
		{2000 * 16 << 10, 16 << 10},
		{2000*16<<10 + 1, 32 << 10},
		{1 << 30, 1 << 20},
		{1 << 50, 16 << 20},
	} {
		if got := AutoPieceLength(tt.total); got != tt.want {
			t.Errorf("AutoPieceLength(%d) = %d, want %d", tt.total, got, tt.want)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	f := filepath.Join(b.TempDir(), "big")
	const size = 256 << 20
	writeRandom(b, f, size, 9)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := Create(context.Background(), f, CreateOptions{PieceLength: 1 << 20, NoDate: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func sha1sum(b []byte) Hash { return Hash(sha1.Sum(b)) }
