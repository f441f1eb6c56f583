package fusefs_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// testFile is one file of a generated torrent; an empty path makes a single-file torrent.
type testFile struct {
	path []string // below the torrent's name
	size int
	pad  bool // a BEP 47 pad file (zeros, hidden)
}

// makeTorrent writes random files under dir/name (or dir/name for a single file) and returns
// a metainfo describing them.
func makeTorrent(t testing.TB, dir, name string, files []testFile, pieceLen int64, seed uint64) *torrentfile.Metainfo {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	var all bytes.Buffer
	single := len(files) == 1 && len(files[0].path) == 0
	info := torrentfile.Info{Name: name, PieceLength: pieceLen, MultiFile: !single}
	for _, f := range files {
		data := make([]byte, f.size)
		if !f.pad {
			rng.Read(data)
		}
		p := filepath.Join(append([]string{dir, name}, f.path...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if !f.pad {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		path := append([]string{name}, f.path...)
		info.Files = append(info.Files, torrentfile.File{Path: path, Length: int64(f.size), Offset: int64(all.Len()), Padding: f.pad})
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

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GOTFS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// requireFUSE skips (or fails in CI) unless real FUSE mounts are possible.
func requireFUSE(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "real FUSE mounts")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if testenv.InCI() {
			t.Fatalf("CI must provide /dev/fuse: %v", err)
		}
		t.Skipf("skipping: reason: /dev/fuse is missing: %v", err)
	}
}

// seeder is one client seeding one torrent from its source folder.
type seeder struct {
	c  *fetch.Client
	st *cache.Storage
}

func (s *seeder) close() {
	s.c.Close()
	s.st.Close()
}

// startSeeder seeds the files under dir from address ip.
func startSeeder(t testing.TB, ip string, mi *torrentfile.Metainfo, dir string) *seeder {
	t.Helper()
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: dir, RecordPath: filepath.Join(t.TempDir(), "rec"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.VerifiedCount() != mi.Info.NumPieces() {
		t.Fatalf("seeder has %d of %d pieces", st.VerifiedCount(), mi.Info.NumPieces())
	}
	c, err := fetch.NewClient(fetch.Config{ListenAddr: ip + ":0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddTorrent(mi, fetch.TorrentOptions{Storage: st, NoTrackers: true}); err != nil {
		t.Fatal(err)
	}
	s := &seeder{c, st}
	t.Cleanup(s.close)
	return s
}

// mounted is a FUSE mount of some torrents, fetching from the given peers into a cache.
type mounted struct {
	t    testing.TB
	dir  string
	fs   *fusefs.FS
	c    *fetch.Client
	tors []*fetch.Torrent
	sts  []*cache.Storage
	once sync.Once
}

// mountTorrents mounts the torrents at a new folder, with their storage under cacheDir.
func mountTorrents(t testing.TB, cacheDir string, opts fusefs.Options, peers []netip.AddrPort, mis ...*torrentfile.Metainfo) *mounted {
	t.Helper()
	return mountWithConfig(t, fetch.Config{}, cacheDir, opts, peers, mis...)
}

// mountWithConfig is mountTorrents with a client configuration.
func mountWithConfig(t testing.TB, cfg fetch.Config, cacheDir string, opts fusefs.Options, peers []netip.AddrPort, mis ...*torrentfile.Metainfo) *mounted {
	t.Helper()
	requireFUSE(t)
	m := &mounted{t: t, dir: t.TempDir()}
	cfg.ListenAddr, cfg.Logger = "127.0.0.1:0", testLogger(t)
	c, err := fetch.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	t.Cleanup(m.close)
	root := cache.Root{Dir: cacheDir}
	for _, mi := range mis {
		st, err := cache.Open(&mi.Info, root.Options(mi.InfoHash))
		if err != nil {
			t.Fatal(err)
		}
		m.sts = append(m.sts, st)
		tor, err := c.AddTorrent(mi, fetch.TorrentOptions{Storage: st, Peers: peers, NoTrackers: true})
		if err != nil {
			t.Fatal(err)
		}
		m.tors = append(m.tors, tor)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	fsys, err := fusefs.Mount(m.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	m.fs = fsys
	for _, tor := range m.tors {
		if _, err := fsys.Add(tor, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// close unmounts and closes everything; it is safe to call twice.
func (m *mounted) close() {
	m.once.Do(func() {
		if m.fs != nil {
			if err := m.fs.Unmount(); err != nil {
				m.t.Errorf("unmount: %v", err)
			}
			// Never leave a mount behind, whatever happened.
			unix.Unmount(m.dir, unix.MNT_DETACH)
		}
		for _, tor := range m.tors {
			tor.Close()
		}
		m.c.Close()
		for _, st := range m.sts {
			st.Close()
		}
	})
}

// path returns the path in the mount of a torrent file.
func (m *mounted) path(f torrentfile.File) string {
	return filepath.Join(append([]string{m.dir}, f.Path...)...)
}

func fileSHA256(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// mounts returns the lines of /proc/self/mounts that mention dir.
func mountsOf(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mounts")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == dir {
			out = append(out, l)
		}
	}
	return out
}

// addTorrent starts one more torrent on the mount's client (not yet shown in the mount).
func addTorrent(t testing.TB, m *mounted, mi *torrentfile.Metainfo, peers ...netip.AddrPort) (*cache.Storage, *fetch.Torrent) {
	t.Helper()
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: t.TempDir(), RecordPath: filepath.Join(t.TempDir(), "rec")})
	if err != nil {
		t.Fatal(err)
	}
	m.sts = append(m.sts, st)
	tor, err := m.c.AddTorrent(mi, fetch.TorrentOptions{Storage: st, Peers: peers, NoTrackers: true})
	if err != nil {
		t.Fatal(err)
	}
	m.tors = append(m.tors, tor)
	return st, tor
}
