package fusefs_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
)

// TestOwnerAndUmask: Owner and Umask decide what stat shows, for files and folders.
func TestOwnerAndUmask(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "owned", []testFile{{Path: []string{"d", "f"}, Size: 10_000}}, 32<<10, 31, "127.0.0.241")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{Owner: &fusefs.Owner{UID: 65534, GID: 4242}, Umask: 0o027}, s.peers, s.mi)
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(m.dir, "owned"), os.ModeDir | 0o550},
		{filepath.Join(m.dir, "owned", "d"), os.ModeDir | 0o550},
		{filepath.Join(m.dir, "owned", "d", "f"), 0o440},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != c.mode || st.Uid != 65534 || st.Gid != 4242 {
			t.Errorf("%s: mode %v uid %d gid %d, want %v 65534 4242", c.path, fi.Mode(), st.Uid, st.Gid, c.mode)
		}
	}
}

// TestRemove: a removed torrent's entry goes at once and its files cannot be opened, but a
// handle already open keeps reading until it is closed; idle is closed only then. A removed
// torrent can be shown again.
func TestRemove(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "gone", []testFile{{Path: []string{"a"}, Size: 200_000}, {Path: []string{"b"}, Size: 1000}}, 32<<10, 32, "127.0.0.242")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, s.peers, s.mi)
	a := filepath.Join(m.dir, "gone", "a")
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idle, open, err := m.fs.Remove(s.mi.InfoHash)
	if err != nil || open != 1 {
		t.Fatalf("Remove: %d open, %v; want 1", open, err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a removed torrent: %v", err)
	}
	if ents, err := os.ReadDir(m.dir); err != nil || len(ents) != 0 {
		t.Errorf("root after remove: %v %v", ents, err)
	}
	b, err := io.ReadAll(f)
	if err != nil || len(b) != 200_000 || fileSHA256(t, s.srcPath(s.mi.Info.Files[0])) != sha256.Sum256(b) {
		t.Errorf("read through a handle open before the remove: %d bytes, %v", len(b), err)
	}
	select {
	case <-idle:
		t.Fatal("idle before the last handle was closed")
	default:
	}
	f.Close()
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
		t.Fatal("idle not closed after the last handle was closed")
	}
	if _, _, err := m.fs.Remove(s.mi.InfoHash); !errors.Is(err, fusefs.ErrNoTorrent) {
		t.Errorf("second Remove: %v, want ErrNoTorrent", err)
	}
	if name, err := m.fs.Add(m.tors[0], time.Time{}); err != nil || name != "gone" {
		t.Fatalf("Add after Remove: %q, %v", name, err)
	}
	if fileSHA256(t, filepath.Join(m.dir, "gone", "b")) != fileSHA256(t, s.srcPath(s.mi.Info.Files[1])) {
		t.Error("b differs after the torrent was shown again")
	}
}
