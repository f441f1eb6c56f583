// Package fusefs shows torrents as a read-only FUSE filesystem. Each open file handle owns one
// fetch.Reader for its whole life; a read waits until the pieces under it are verified and is
// then answered with the cache file's descriptor (zero-copy splice). Listing, stat and open
// never wait on the network.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/torrentfile"
)

// Kernel cache lifetimes. Names never change (new torrents are announced with a notify), so
// entries live long; attributes are short so that st_blocks (verified bytes) refreshes for du.
const (
	entryTimeout    = time.Hour
	attrTimeout     = time.Second
	negativeTimeout = time.Second
	// maxRead is the largest read the kernel sends: the largest whose reply still fits the
	// pipe go-fuse splices it through. That reply is a 16-byte header, the payload and a spare
	// page, and a pipe holds at most 1 MiB unless root raised fs.pipe-max-size: with 1 MiB
	// reads every reply fell back to a copy through user space. Against 512 KiB reads, half
	// the requests made a cold cp 15 % faster and the mount's CPU 10 % lower (DESIGN §12).
	maxRead = 1016 << 10
	// kernelReadahead is the readahead the mount asks of the kernel (two reads in flight).
	kernelReadahead = 2 * maxRead
	// drainTimeout bounds how long Unmount waits for replies still splicing from cache files.
	drainTimeout = 2 * time.Second
	// serverExitTimeout bounds how long Unmount waits for the FUSE server after a lazy detach.
	serverExitTimeout = 2 * time.Second
)

// Options configures a filesystem.
type Options struct {
	// MaxReadahead bounds each open file's readahead window (fetch.ReaderOptions.MaxReadahead;
	// 0 = the engine's default, <0 = none).
	MaxReadahead int64
	// HeadTail is how much of the start and end of each opened file is fetched early
	// (fetch.HeadTailHint is a good value; 0 = none).
	HeadTail int64
	// ReadTimeout makes a read that waits longer than this for its pieces fail with EIO;
	// 0 waits until the data comes, the read is interrupted, or the filesystem is unmounted.
	ReadTimeout time.Duration
	// AllowOther lets other users read the mount (root, or user_allow_other in /etc/fuse.conf).
	AllowOther bool
	// Owner is the owner shown for every file and folder; nil means the mounting process's
	// user and group.
	Owner *Owner
	// Umask clears permission bits from what is shown: files are 0444 and folders 0555 before
	// it (umask 027 shows 0440 and 0550). Only the bits 0777 count. With an Owner or a Umask
	// the mount gets default_permissions: the kernel checks every access against the owner
	// and mode shown (without them everyone the mount lets in may read, as 0444 says).
	Umask uint32
	// Debug logs every FUSE request (very verbose).
	Debug bool
	// NoPassthrough turns FUSE passthrough off. By default a file whose every byte is verified
	// when it is opened is read by the kernel straight from the cache file (Linux 6.9+, root),
	// at the disk's own speed; everything else comes through Read. While a file is open in
	// passthrough mode the kernel requires every other open of it to be passthrough too, so an
	// O_DIRECT open made then follows the cache file's own O_DIRECT rules (aligned offsets and
	// sizes, as on the disk filesystem itself); an O_DIRECT open made when no passthrough open
	// exists comes through Read and may be unaligned.
	NoPassthrough bool
	// PassthroughMaxSize keeps files larger than this off passthrough (0 = no bound). A file
	// open in passthrough mode is pinned whole in the cache; with a size-bounded cache, a
	// large one would keep the cache over its bound for as long as it stays open.
	PassthroughMaxSize int64
	// Logger receives the filesystem's logs; nil discards them.
	Logger *slog.Logger
}

// Owner is a user and group id.
type Owner struct{ UID, GID uint32 }

// FS is a mounted filesystem holding any number of torrents, one entry per torrent at its root.
type FS struct {
	opts   Options
	log    *slog.Logger
	dir    string
	server *fuse.Server
	root   *rootNode
	uid    uint32
	gid    uint32
	// fileMode and dirMode are the permission bits shown (0444 and 0555 less Options.Umask).
	fileMode, dirMode uint32

	// ctx is cancelled by Unmount so that blocked reads return at once.
	ctx    context.Context
	cancel context.CancelFunc

	// inflight counts replies that may still read a cache file's descriptor; closed turns
	// new reads away so storages can be closed safely after Unmount.
	inflight atomic.Int64
	closed   atomic.Bool

	// totalSize and fileCount are what Statfs reports.
	totalSize, fileCount atomic.Int64

	// passthrough is set when the kernel and our privileges allow FUSE passthrough and the
	// options do not turn it off.
	passthrough bool
	// reads counts Read calls and passOpens opens answered in passthrough mode (Counters).
	reads, passOpens atomic.Int64

	// files finds a file by the FUSE node ID the kernel names it with (its StableAttr.Ino:
	// the mount uses fs.Options.ExternalNodeID), for rawFS.Open. A file is in it before it is
	// linked in the tree and stays for the mount's life, as its inode does.
	filesMu sync.RWMutex
	files   map[uint64]*fileNode

	// testHookReleased, unset outside tests, is called at the end of every handle's Release.
	testHookReleased atomic.Pointer[func(passthrough bool)]

	done chan struct{} // closed when the FUSE server stops (unmounted, here or elsewhere)

	mu       sync.Mutex
	torrents map[torrentfile.Hash]*entry // the torrents shown, by info hash
	unmount  error
	unmnted  bool
}

// Mount mounts an empty filesystem at dir; Add puts torrents in it. It returns once the kernel
// has the mount.
func Mount(dir string, opts Options) (*FS, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FS{
		opts: opts, log: log, dir: dir, done: make(chan struct{}),
		torrents: map[torrentfile.Hash]*entry{},
		files:    map[uint64]*fileNode{},
		uid:      uint32(os.Getuid()), gid: uint32(os.Getgid()),
		fileMode: 0o444 &^ (opts.Umask & 0o777), dirMode: 0o555 &^ (opts.Umask & 0o777),
	}
	if opts.Owner != nil {
		f.uid, f.gid = opts.Owner.UID, opts.Owner.GID
	}
	mountOpts := []string{"ro"}
	if opts.Owner != nil || opts.Umask&0o777 != 0 {
		// The kernel checks every access against the owner and mode shown.
		mountOpts = append(mountOpts, "default_permissions")
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.root = &rootNode{dirNode: dirNode{fs: f, mtime: time.Now()}}
	et, at, nt := entryTimeout, attrTimeout, negativeTimeout
	fopts := &fs.Options{
		EntryTimeout:    &et,
		AttrTimeout:     &at,
		NegativeTimeout: &nt,
		UID:             f.uid,
		GID:             f.gid,
		// The node ID of a request is the node's StableAttr.Ino, so that rawFS.Open can find
		// the file a passthrough open is for (go-fuse's own node IDs are not exported). Inode
		// numbers are still assigned by go-fuse, each once.
		ExternalNodeID: true,
		MountOptions: fuse.MountOptions{
			FsName:       "gotfs",
			Name:         "gotfs",
			DirectMount:  true,
			AllowOther:   opts.AllowOther,
			MaxWrite:     maxRead,
			MaxReadAhead: kernelReadahead,
			Options:      mountOpts,
			Debug:        opts.Debug,
		},
	}
	// fs.Mount, but with go-fuse's filesystem wrapped in rawFS, which does the passthrough
	// registrations itself.
	raw := &rawFS{RawFileSystem: fs.NewNodeFS(f.root, fopts), fs: f}
	server, err := fuse.NewServer(raw, dir, &fopts.MountOptions)
	if err != nil {
		f.cancel()
		if opts.AllowOther && os.Geteuid() != 0 {
			// fusermount3 says why on its stderr, which go-fuse does not pass on.
			return nil, fmt.Errorf("mount %s: %w (as a user other than root, allow_other needs user_allow_other in /etc/fuse.conf)", dir, err)
		}
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	f.server = server
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		// As in fs.Mount: the serve loop of a failed mount ends by itself.
		f.cancel()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	f.passthrough = !opts.NoPassthrough && os.Geteuid() == 0 &&
		server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
	go func() {
		server.Wait()
		close(f.done)
	}()
	if err := raiseReadahead(dir, kernelReadahead); err != nil {
		log.Debug("kernel readahead stays at its default", "err", err)
	}
	return f, nil
}

// raiseReadahead sets the kernel's readahead for the mount to bytes. The kernel caps a FUSE
// mount's readahead at the default (128 KiB) whatever the filesystem asks for, so sequential
// reads would reach us 128 KiB at a time; the mount's backing device in /sys says otherwise.
// The device number comes from /proc/self/mountinfo, not from a stat of the mount, which would
// put the root's attributes in the kernel's cache. It needs root; elsewhere the default stays.
func raiseReadahead(dir string, bytes int) error {
	m, err := findMount(dir)
	if err != nil {
		return err
	}
	dev := m.device
	p := "/sys/class/bdi/" + dev + "/read_ahead_kb"
	if err := os.WriteFile(p, []byte(strconv.Itoa(bytes/1024)), 0o644); err != nil {
		return fmt.Errorf("set %s: %w", p, err)
	}
	return nil
}

// Counters are running totals of how the filesystem answered reads.
type Counters struct {
	// Reads counts read requests that reached gotfs (not served from the kernel's cache or by
	// passthrough).
	Reads int64
	// PassthroughOpens counts opens the kernel serves from the cache file itself.
	PassthroughOpens int64
	// Passthrough reports whether passthrough is in use on this mount (kernel, privileges and
	// options allow it).
	Passthrough bool
}

// Counters returns how reads were answered so far.
func (f *FS) Counters() Counters {
	return Counters{Reads: f.reads.Load(), PassthroughOpens: f.passOpens.Load(), Passthrough: f.passthrough}
}

// Dir returns the mount point.
func (f *FS) Dir() string { return f.dir }

// Done is closed when the filesystem stops serving: after Unmount, or when it was unmounted
// from outside (gotfs unmount, fusermount3 -u, umount).
func (f *FS) Done() <-chan struct{} { return f.done }

// Add shows torrent t at the root: a single-file torrent as a file, a multi-file torrent as
// its folder. It returns the entry's name, which is the torrent's name unless another torrent
// already took it (then the name gets a "~" and the start of the info hash).
func (f *FS) Add(t *fetch.Torrent, mtime time.Time) (string, error) {
	mi := t.Metainfo()
	info := &mi.Info
	if mtime.IsZero() {
		mtime = mi.CreationDate
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unmnted {
		return "", errors.New("add torrent: filesystem is unmounted")
	}
	if e, ok := f.torrents[mi.InfoHash]; ok {
		return "", fmt.Errorf("add torrent %s: already shown as %q", info.Name, e.name)
	}
	rootIn := f.root.EmbeddedInode()
	top, err := mi.EntryName(func(name string) bool { return rootIn.GetChild(name) != nil })
	if err != nil {
		return "", fmt.Errorf("add torrent %s: %w", info.Name, err)
	}
	visible := info.VisibleFiles()
	ctx := context.Background()
	e := &entry{name: top, idle: make(chan struct{})}
	files := map[uint64]*fileNode{}
	newFile := func(i int) *fs.Inode {
		n := &fileNode{fs: f, t: t, e: e, idx: i, size: info.Files[i].Length, mtime: mtime}
		in := rootIn.NewPersistentInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG})
		files[in.StableAttr().Ino] = n
		return in
	}
	single := len(info.Files[visible[0]].Path) == 1
	var topIn *fs.Inode
	if single {
		// A single-file torrent (or a one-element path): the file itself is the entry.
		i := visible[0]
		topIn = newFile(i)
	} else {
		topIn = rootIn.NewPersistentInode(ctx, &dirNode{fs: f, mtime: mtime}, fs.StableAttr{Mode: syscall.S_IFDIR})
		for _, i := range visible {
			p := info.Files[i].Path
			if len(p) < 2 || p[0] != info.Files[visible[0]].Path[0] {
				return "", fmt.Errorf("add torrent %s: file %q is outside the torrent's folder", info.Name, p)
			}
			dir := topIn
			for _, el := range p[1 : len(p)-1] {
				ch := dir.GetChild(el)
				if ch == nil {
					ch = rootIn.NewPersistentInode(ctx, &dirNode{fs: f, mtime: mtime}, fs.StableAttr{Mode: syscall.S_IFDIR})
					dir.AddChild(el, ch, false)
				} else if !ch.IsDir() {
					return "", fmt.Errorf("add torrent %s: %q is both a file and a folder", info.Name, p)
				}
				dir = ch
			}
			leaf := p[len(p)-1]
			if dir.GetChild(leaf) != nil {
				return "", fmt.Errorf("add torrent %s: duplicate path %q", info.Name, p)
			}
			dir.AddChild(leaf, newFile(i), false)
		}
	}
	// The files become reachable with the top entry: rawFS.Open must find them by then.
	f.filesMu.Lock()
	maps.Copy(f.files, files)
	f.filesMu.Unlock()
	rootIn.AddChild(top, topIn, false)
	for _, i := range visible {
		e.size += info.Files[i].Length
	}
	e.count = int64(len(visible))
	f.totalSize.Add(e.size)
	f.fileCount.Add(e.count)
	for ino := range files {
		e.inodes = append(e.inodes, ino)
	}
	f.torrents[mi.InfoHash] = e
	// Drop a negative entry the kernel may hold for the new name.
	if errno := rootIn.NotifyEntry(top); errno != 0 && errno != syscall.ENOENT {
		f.log.Debug("notify new entry", "name", top, "err", errno)
	}
	return top, nil
}

// file returns the file with FUSE node ID id, or nil.
func (f *FS) file(id uint64) *fileNode {
	f.filesMu.RLock()
	defer f.filesMu.RUnlock()
	return f.files[id]
}

// Unmount stops the filesystem: blocked reads return at once (EIO), the mount is removed (lazily
// when files are still open: the kernel drops it once they are closed), and no reply reads a
// cache file afterwards, so the caller may close the torrents and storages when it returns.
func (f *FS) Unmount() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unmnted {
		return f.unmount
	}
	f.unmnted = true
	f.cancel()
	f.closed.Store(true)
	var err error
	select {
	case <-f.done:
		// Already unmounted from outside.
	default:
		err = f.server.Unmount()
		if err != nil {
			f.log.Info("unmount busy, detaching lazily", "dir", f.dir, "err", err)
			err = Unmount(f.dir, true)
		}
		if err == nil {
			select {
			case <-f.done:
			case <-time.After(serverExitTimeout):
				// Files are still open through the detached mount; the kernel ends the
				// connection when they are closed or the process exits.
				f.log.Info("mount detached with files still open", "dir", f.dir)
			}
		}
	}
	deadline := time.Now().Add(drainTimeout)
	for f.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		err = fmt.Errorf("unmount %s: %w", f.dir, err)
	}
	f.unmount = err
	return err
}

// enter marks a reply that will read a cache file; it fails once the filesystem is closing.
func (f *FS) enter() bool {
	f.inflight.Add(1)
	if f.closed.Load() {
		f.inflight.Add(-1)
		return false
	}
	return true
}

func (f *FS) leave() { f.inflight.Add(-1) }
