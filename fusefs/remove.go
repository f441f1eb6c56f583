package fusefs

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/gotfs/gotfs/torrentfile"
)

// ErrNoTorrent is returned by Remove for a torrent the filesystem does not show.
var ErrNoTorrent = errors.New("no such torrent in the mount")

// entry is one torrent shown at the root, and the count of its open file handles.
//
// Removing a torrent works as unlinking an open file does: its entry leaves the tree at once
// and no new open of its files succeeds, but the handles already open keep reading (ordinary
// and passthrough alike) until they are closed; idle is closed once the torrent is removed and
// no handle is open, and only then may its owner close the torrent and its storage.
type entry struct {
	name   string
	size   int64    // bytes of its visible files, for Statfs
	count  int64    // its visible files
	inodes []uint64 // its files' node IDs in FS.files

	mu      sync.Mutex // a leaf lock
	opens   int
	removed bool
	idle    chan struct{}
}

// acquire counts a new open handle; it fails once the torrent is removed.
func (e *entry) acquire() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return false
	}
	e.opens++
	return true
}

// release uncounts an open handle of a file of f; the last one of a removed torrent ends it.
func (e *entry) release(f *FS) {
	e.mu.Lock()
	e.opens--
	idle := e.opens == 0 && e.removed
	e.mu.Unlock()
	if idle {
		f.forget(e)
	}
}

// remove marks the torrent removed and returns how many handles are still open.
func (e *entry) remove() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removed = true
	return e.opens
}

// forget drops the files of a removed torrent whose last handle is closed, and closes its
// idle channel. The file nodes stay findable by rawFS.Open until then.
func (f *FS) forget(e *entry) {
	f.filesMu.Lock()
	for _, ino := range e.inodes {
		delete(f.files, ino)
	}
	f.filesMu.Unlock()
	close(e.idle)
}

// Remove takes the torrent with the given info hash out of the filesystem: its entry
// disappears at once and new opens of its files fail (ENOENT), while handles already open keep
// working until they are closed. The returned channel is closed when the last of them is
// closed (at once when none is open); the caller must not close the torrent or its storage
// before. open is how many handles were open.
func (f *FS) Remove(hash torrentfile.Hash) (idle <-chan struct{}, open int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.torrents[hash]
	if !ok {
		return nil, 0, fmt.Errorf("remove %s: %w", hash.Hex(), ErrNoTorrent)
	}
	delete(f.torrents, hash)
	rootIn := f.root.EmbeddedInode()
	rootIn.RmChild(e.name)
	// Drop the kernel's entry for the name (and with it the cached tree below it). Once the
	// filesystem is unmounted there is no kernel to tell.
	if !f.unmnted {
		if errno := rootIn.NotifyEntry(e.name); errno != 0 && errno != syscall.ENOENT {
			f.log.Debug("notify removed entry", "name", e.name, "err", errno)
		}
	}
	f.totalSize.Add(-e.size)
	f.fileCount.Add(-e.count)
	if open = e.remove(); open == 0 {
		f.forget(e)
	}
	return e.idle, open, nil
}
