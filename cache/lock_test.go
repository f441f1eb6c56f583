package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
)

// TestLock: a torrent's cache lock is exclusive (even between two opens in one process, as
// flock is), names its holder, is free again once closed, and refuses a symlinked folder.
func TestLock(t *testing.T) {
	r := Root{Dir: t.TempDir()}
	h := torrentfile.Hash{1, 2, 3}
	l1, err := r.Lock(h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Lock(h)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "(pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second Lock: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l1.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l2, err := r.Lock(h)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	l2.Close()
	other := torrentfile.Hash{9}
	if err := os.Symlink(t.TempDir(), r.TorrentDir(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(other); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("Lock of a symlinked folder: %v", err)
	}
	if _, err := (Root{Dir: "relative"}).Lock(h); err == nil {
		t.Error("Lock in a relative root was accepted")
	}
	if _, err := os.Stat(filepath.Join(r.TorrentDir(h), lockFileName)); err != nil {
		t.Errorf("lock file: %v", err)
	}
}
