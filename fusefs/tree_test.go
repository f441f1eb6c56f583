package fusefs_test

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fusefs"
)

var treeFiles = []testFile{
	{Path: []string{"a.bin"}, Size: 100_000},
	{Path: []string{".pad", "0"}, Size: 31_072, Pad: true},
	{Path: []string{"empty"}, Size: 0},
	{Path: []string{"sub", "tiny1"}, Size: 5_000},
	{Path: []string{"sub", "deeper", "b.bin"}, Size: 300_001},
}

// TestTree checks names, modes, sizes and times of a mount of several torrents that no peer
// serves: listing, stat and open must not wait on the network.
func TestTree(t *testing.T) {
	src := t.TempDir()
	multi := makeTorrent(t, src, "Movie", treeFiles, 32<<10, 1)
	single := makeTorrent(t, src, "single.bin", []testFile{{Size: 70_000}}, 32<<10, 2)
	clash := makeTorrent(t, t.TempDir(), "Movie", []testFile{{Path: []string{"x"}, Size: 10}}, 32<<10, 3)
	start := time.Now()
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, nil, multi, single, clash)

	if got := mountsOf(m.dir); len(got) != 1 || !strings.Contains(got[0], "fuse.gotfs") || !strings.Contains(got[0], "ro,") {
		t.Errorf("mount table: %q, want one read-only fuse.gotfs mount", got)
	}
	names := readDir(t, m.dir)
	want := []string{"Movie", "Movie~" + hexPrefix(clash.InfoHash[:4]), "single.bin"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("root holds %q, want %q", names, want)
	}
	if got := readDir(t, filepath.Join(m.dir, "Movie")); strings.Join(got, ",") != "a.bin,empty,sub" {
		t.Errorf("Movie holds %q (pad files must be hidden)", got)
	}
	for _, f := range multi.Info.VisibleFiles() {
		checkFile(t, m.path(multi.Info.Files[f]), multi.Info.Files[f].Length, multi.CreationDate)
	}
	checkFile(t, filepath.Join(m.dir, "single.bin"), 70_000, single.CreationDate)
	for _, d := range []string{"Movie", "Movie/sub", "Movie/sub/deeper"} {
		fi, err := os.Stat(filepath.Join(m.dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o555 {
			t.Errorf("%s: mode %v, want dr-xr-xr-x", d, fi.Mode())
		}
	}
	// Open never waits on the network, and writes are refused.
	f, err := os.Open(filepath.Join(m.dir, "Movie/a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.OpenFile(filepath.Join(m.dir, "Movie/a.bin"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create: %v, want EROFS", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("listing a mount without peers took %v", d)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(m.dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total < 100_000+300_001+5_000+70_000 {
		t.Errorf("statfs reports %d bytes", total)
	}
	// A torrent added while mounted appears without remount, even after a failed lookup.
	late := makeTorrent(t, t.TempDir(), "late", []testFile{{Path: []string{"l"}, Size: 1000}}, 32<<10, 4)
	if _, err := os.Stat(filepath.Join(m.dir, "late")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat before add: %v", err)
	}
	st, tor := addTorrent(t, m, late)
	_ = st
	if _, err := m.fs.Add(tor, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "late", "l")); err != nil {
		t.Errorf("stat after add: %v", err)
	}
}

func hexPrefix(b []byte) string {
	const digits = "0123456789abcdef"
	var s []byte
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func readDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func checkFile(t testing.TB, path string, size int64, mtime time.Time) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size || fi.Mode() != 0o444 || !fi.ModTime().Equal(mtime) {
		t.Errorf("%s: size %d mode %v mtime %v, want %d -r--r--r-- %v", path, fi.Size(), fi.Mode(), fi.ModTime().UTC(), size, mtime)
	}
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks; blocks != 0 {
		t.Errorf("%s: %d blocks before any download", path, blocks)
	}
}
