package fusefs_test

import (
	"crypto/sha256"
	"io"
	"log/slog"
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
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/internal/testswarm/seeder"
	"github.com/gotfs/gotfs/torrentfile"
)

// testFile is one file of a generated torrent (testswarm.File).
type testFile = testswarm.File

// makeTorrent writes random files under dir/name and returns a metainfo describing them.
func makeTorrent(t testing.TB, dir, name string, files []testFile, pieceLen int64, seed uint64) *torrentfile.Metainfo {
	t.Helper()
	return testswarm.MakeTorrent(t, dir, name, files, pieceLen, seed)
}

func testLogger(t testing.TB) *slog.Logger { return testswarm.Logger(t) }

// startSeeder seeds the files under dir from address ip.
func startSeeder(t testing.TB, ip string, mi *torrentfile.Metainfo, dir string) *fetch.Client {
	t.Helper()
	return seeder.Start(t, mi, dir, ip+":0")
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
	testenv.RequireFUSE(t)
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
