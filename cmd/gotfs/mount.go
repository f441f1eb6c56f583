package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/status"
	"github.com/gotfs/gotfs/torrentfile"
)

// defaultPollEvery is how often a mounted folder of .torrent files is scanned for new ones.
const defaultPollEvery = 3 * time.Second

// mountFlags are the flags of `gotfs mount`.
type mountFlags struct {
	engine      engineFlags
	readahead   int64
	prefetch    bool
	verify      bool
	noPassthru  bool
	readTimeout time.Duration
	pollEvery   time.Duration
	debugFUSE   bool
	http        httpFlags
	service     serviceFlags
}

func newMountCmd(a *app) *cobra.Command {
	f := mountFlags{readahead: fetch.DefaultMaxReadahead}
	cmd := &cobra.Command{
		Use:   "mount TORRENT|DIR|MAGNET MOUNTPOINT",
		Short: "Show a torrent (or a folder of .torrent files) as read-only files",
		Long: `Mount a torrent, or every .torrent file in a folder, at MOUNTPOINT. Its files appear at
once; each read fetches the pieces under it first (then a readahead window), so a video plays
within seconds and copying one file fetches only that file's pieces. Fetched pieces stay in
the cache folder, so a remount serves them without any peer. .torrent files added to a
mounted folder appear within a few seconds. Runs in the foreground: Ctrl-C (or SIGTERM, or
gotfs unmount MOUNTPOINT) unmounts and saves state. With --daemon it runs in the background and
returns once the mount is ready. gotfs add, remove and set change a running mount; as
"gotfs SOURCE MOUNTPOINT -o OPTIONS" it is the helper of mount -t fuse.gotfs and /etc/fstab.`,
		Example: `  gotfs mount movie.torrent /mnt/t
  gotfs mount ~/torrents/ /mnt/t
  gotfs mount --prefetch --peer 10.0.0.5:6881 linux.torrent /mnt/t
  gotfs mount --daemon --allow-other --uid 1000 --umask 027 movie.torrent /mnt/t`,
		Args: exactArgs("TORRENT", "MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if err := f.service.check(cmd); err != nil {
				return err
			}
			if err := startDaemonChild(a, f.service.logFile); err != nil {
				return err
			}
			if f.service.daemon && a.onReady == nil {
				if args[0] == "-" {
					return newUsageError(cmd, "--daemon cannot read the torrent from standard input")
				}
				return daemonize(ctx, a, f.service.logFile)
			}
			return runMount(ctx, a, args[0], args[1], &f)
		},
	}
	f.bindFetchFlags(cmd, "")
	fl := cmd.Flags()
	fl.BoolVar(&f.noPassthru, "no-passthrough", false, "serve every read through gotfs, even of fully verified files (by default the kernel reads those straight from the cache: FUSE passthrough, Linux 6.9+, root)")
	fl.Bool("passthrough", true, "passthrough is the default now") // the former opt-in flag: accepted, ignored
	_ = fl.MarkDeprecated("passthrough", "it is the default now (--no-passthrough turns it off)")
	fl.BoolVar(&f.debugFUSE, "debug-fuse", false, "log every FUSE request")
	_ = fl.MarkHidden("debug-fuse")
	f.service.bind(cmd)
	return cmd
}

// bindFetchFlags adds the flags mount and serve share: the engine's, how reads fetch, and
// --http (whose default is httpDefault).
func (f *mountFlags) bindFetchFlags(cmd *cobra.Command, httpDefault string) {
	f.engine.bind(cmd)
	f.engine.bindCacheSize(cmd)
	fl := cmd.Flags()
	fl.Var(sizeValue{&f.readahead}, "readahead", "largest readahead window of each open file, reached while reads stay sequential (0 = none; with --cache-size at most a quarter of it)")
	fl.BoolVar(&f.prefetch, "prefetch", false, "fetch every piece in the background, not only what is read")
	fl.BoolVar(&f.verify, "verify", false, "re-hash every cached piece before mounting; damaged ones are fetched again")
	fl.DurationVar(&f.readTimeout, "read-timeout", 0, "fail a read (EIO, or a cut HTTP body) that waits longer than this for its pieces (0 = wait)")
	fl.DurationVar(&f.pollEvery, "poll", defaultPollEvery, "how often a mounted folder is scanned for new .torrent files")
	f.http.bind(cmd, httpDefault)
}

// mountSession is one running mount: the engine, the filesystem and the torrents in it.
type mountSession struct {
	a      *app
	root   cache.Root
	eng    *engine
	client *fetch.Client
	fs     *fusefs.FS // nil for gotfs serve
	http   *httpServer
	peers  []netip.AddrPort
	flags  *mountFlags

	// stopping is closed when the mount starts to shut down.
	stopping chan struct{}

	mu       sync.Mutex
	torrents []*mountedTorrent
	removing map[*mountedTorrent]bool // removed, stopping once their open files are closed
	byHash   map[torrentfile.Hash]bool
	tried    map[string]fileStamp // .torrent files of a mounted folder already looked at
}

// mountedTorrent is one torrent shown in the mount.
type mountedTorrent struct {
	name string // entry name at the mount's root
	tor  *fetch.Torrent
	st   *cache.Storage
	lock *cache.Lock // the torrent's cache folder, held while the torrent runs

	closeOnce sync.Once
	closeErr  error
}

// close stops the torrent, saves its state and frees its cache lock (once; later calls
// return the first one's result).
func (mt *mountedTorrent) close() error {
	mt.closeOnce.Do(func() {
		err := mt.tor.Close()
		if serr := mt.st.Close(); serr != nil {
			err = errors.Join(err, fmt.Errorf("save %s: %w", mt.name, serr))
		}
		mt.closeErr = errors.Join(err, mt.lock.Close())
	})
	return mt.closeErr
}

type fileStamp struct {
	size  int64
	mtime time.Time
}

// runMount mounts src at mountpoint; an empty mountpoint runs the same session without FUSE
// (gotfs serve: HTTP only).
func runMount(ctx context.Context, a *app, src, mountpoint string, f *mountFlags) error {
	if f.readahead == 0 {
		f.readahead = -1 // fetch.ReaderOptions: <0 means none
	}
	if c := f.engine.cacheSize; c > 0 && f.readahead > c/4 {
		// The window's pieces are never evicted: with a bounded cache they keep to a quarter
		// of it, so that readers and other files keep room.
		f.readahead = max(c/4, 1<<20)
	}
	mp, err := filepath.Abs(mountpoint)
	if err != nil && mountpoint != "" {
		return fmt.Errorf("mount point %s: %w", mountpoint, err)
	}
	// Fail on a bad torrent or magnet link before mounting anything.
	var source *torrentSource
	isDir := false
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		isDir = true
	} else if source, err = readTorrentSource(a, src); err != nil {
		return err
	}
	if mountpoint == "" {
		mp = ""
	} else if err := fusefs.PrepareMountPoint(mp, a.log); err != nil {
		return err
	}
	if p, err := filepath.EvalSymlinks(mp); err == nil {
		mp = p
	}
	root, err := f.engine.root()
	if err != nil {
		return err
	}
	peers, err := f.engine.peerAddrs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root.Dir, 0o755); err != nil {
		return fmt.Errorf("cache folder: %w", err)
	}
	eng, err := f.engine.start(ctx, a)
	if err != nil {
		return err
	}
	var first *torrentSource
	if source != nil {
		// A magnet's mount appears once the metadata is known; load says what it waits for.
		mi, raw, err := f.engine.load(ctx, a, eng, source) // addTorrent keeps it in the cache
		if err != nil {
			eng.Close()
			return err
		}
		first = &torrentSource{arg: src, mi: mi, raw: raw}
	}
	s := &mountSession{
		a: a, root: root, eng: eng, client: eng.client, peers: peers, flags: f,
		stopping: make(chan struct{}), removing: map[*mountedTorrent]bool{},
		byHash: map[torrentfile.Hash]bool{}, tried: map[string]fileStamp{},
	}
	if mp == "" {
		err = s.startHTTP()
	} else {
		addProcsForFUSE()
		s.fs, err = fusefs.Mount(mp, fusefs.Options{
			MaxReadahead: f.readahead,
			HeadTail:     fetch.HeadTailHint,
			ReadTimeout:  f.readTimeout,
			// root's mounts have always been open to every user (as the modes say).
			AllowOther:    f.service.allowOther || os.Geteuid() == 0,
			Owner:         f.service.owner(),
			Umask:         f.service.umask,
			Debug:         f.debugFUSE,
			NoPassthrough: f.noPassthru,
			// A passthrough file is pinned whole while open: with a bounded cache only files
			// that leave room for the rest (half the bound) go passthrough.
			PassthroughMaxSize: f.engine.cacheSize / 2,
			Logger:             a.log,
		})
		if err != nil {
			eng.Close()
			if f.service.allowOther && os.Geteuid() != 0 {
				return err // fusefs says what allow_other needs
			}
			return fmt.Errorf("%w (is another process mounted there? try: gotfs unmount %s)", err, mp)
		}
		err = s.startHTTP()
	}
	if err != nil {
		return errors.Join(err, s.shutdown())
	}
	err = s.run(ctx, src, isDir, first)
	return errors.Join(err, s.shutdown())
}

// run adds the torrents, serves status and waits for a signal or an outside unmount.
func (s *mountSession) run(ctx context.Context, src string, isDir bool, first *torrentSource) error {
	if isDir {
		s.scanFolder(src)
	} else if _, err := s.addTorrent(src, first.mi, first.raw); err != nil {
		return err
	}
	if s.fs != nil {
		ln, err := s.listenStatus()
		if err != nil {
			s.a.log.Warn("no control socket; gotfs status, add, remove and set will not work for this mount", "err", err)
		} else {
			defer func() {
				ln.Close()
				os.Remove(ln.Addr().String())
			}()
			// Requests still running (a magnet's metadata) end with the mount.
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go s.serveControl(cctx, ln)
		}
	}
	s.mu.Lock()
	n := len(s.torrents)
	s.mu.Unlock()
	what := fmt.Sprintf("%d torrent(s)", n)
	if !isDir && n == 1 {
		what = s.torrents[0].name
	}
	where := s.announce(what)
	s.a.ready(fmt.Sprintf("mounted %s at %s", what, where))
	notify := newSDNotifier(s.a.log)
	notify.send("READY=1\nSTATUS=" + s.progressLine())
	notifyTick := notify.ticker(statusNotifyEvery)
	defer notifyTick.Stop()
	defer notify.send("STOPPING=1\nSTATUS=stopping " + where)

	var tick <-chan time.Time
	if isDir {
		t := time.NewTicker(s.flags.pollEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			if s.fs != nil {
				fmt.Fprintf(s.a.stderr, "gotfs: unmounting %s\n", s.fs.Dir())
			}
			return nil
		case <-s.fsDone():
			fmt.Fprintf(s.a.stderr, "gotfs: %s was unmounted\n", s.fs.Dir())
			return nil
		case <-tick:
			s.scanFolder(src)
		case <-notifyTick.C:
			notify.send("STATUS=" + s.progressLine())
		}
	}
}

// scanFolder adds the .torrent files of dir not seen yet. A file that fails to load is retried
// when its size or time changes (it may still be being written).
func (s *mountSession) scanFolder(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		s.a.log.Warn("scan torrent folder", "dir", dir, "err", err)
		return
	}
	for _, e := range ents {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".torrent") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		stamp := fileStamp{fi.Size(), fi.ModTime()}
		s.mu.Lock()
		old, seen := s.tried[path]
		s.tried[path] = stamp
		s.mu.Unlock()
		if seen && old == stamp {
			continue
		}
		mi, raw, err := readTorrentFile(s.a, path)
		if err == nil {
			_, err = s.addTorrent(path, mi, raw)
		}
		if errors.Is(err, errAlreadyMounted) {
			s.a.log.Info("torrent already mounted", "path", path, "err", err)
		} else if err != nil {
			fmt.Fprintf(s.a.stderr, "gotfs: skipping %s\n", oneLine(err.Error()))
		}
	}
}

// errAlreadyMounted is returned by addTorrent for a torrent the mount already shows.
var errAlreadyMounted = errors.New("already in the mount")

// addTorrent locks the cache of one torrent, opens it, starts the torrent and shows it in the
// mount; it returns the entry's name.
func (s *mountSession) addTorrent(path string, mi *torrentfile.Metainfo, raw []byte) (string, error) {
	s.mu.Lock()
	dup := s.byHash[mi.InfoHash]
	s.byHash[mi.InfoHash] = true
	s.mu.Unlock()
	if dup {
		return "", fmt.Errorf("%s (%s): %w", path, mi.InfoHash.Hex(), errAlreadyMounted)
	}
	var lock *cache.Lock
	fail := func(err error) (string, error) {
		lock.Close()
		s.mu.Lock()
		delete(s.byHash, mi.InfoHash)
		s.mu.Unlock()
		return "", err
	}
	lock, err := s.root.Lock(mi.InfoHash)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	if err := s.root.SaveMetainfo(mi.InfoHash, mi.InfoBytes, raw); err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	opts := s.root.Options(mi.InfoHash)
	opts.Logger = s.a.log
	st, err := cache.Open(&mi.Info, opts)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	if s.flags.verify {
		before := st.VerifiedCount()
		if err := st.Check(context.Background(), nil); err != nil {
			st.Close()
			return fail(fmt.Errorf("verify %s: %w", path, err))
		}
		if bad := before - st.VerifiedCount(); bad > 0 {
			s.a.log.Warn("damaged cached pieces dropped; they will be fetched again", "torrent", mi.Info.Name, "pieces", bad)
		}
	}
	tor, err := s.client.AddTorrent(mi, fetch.TorrentOptions{Storage: st, Peers: s.peers, Background: s.flags.prefetch})
	if err != nil {
		st.Close()
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	name, err := s.show(tor)
	if err != nil {
		tor.Close()
		st.Close()
		return fail(err)
	}
	s.mu.Lock()
	s.torrents = append(s.torrents, &mountedTorrent{name: name, tor: tor, st: st, lock: lock})
	s.mu.Unlock()
	s.a.log.Info("torrent mounted", "name", name, "info_hash", hex.EncodeToString(mi.InfoHash[:]),
		"size", mi.Info.Length, "verified", st.VerifiedBytes())
	return name, nil
}

// shutdown unmounts, then stops the torrents and saves their state.
func (s *mountSession) shutdown() error {
	close(s.stopping)
	errs := []error{s.http.Close()}
	if s.fs != nil {
		errs = append(errs, s.fs.Unmount())
	}
	s.mu.Lock()
	torrents := s.torrents
	s.torrents = nil
	var removed []*mountedTorrent
	for mt := range s.removing {
		removed = append(removed, mt)
	}
	s.mu.Unlock()
	for _, mt := range removed {
		if err := mt.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, mt := range torrents {
		mt.tor.Close() // every torrent stops before the engine; mt.close reports its error
	}
	if err := s.eng.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop peer engine: %w", err))
	}
	for _, mt := range torrents {
		if err := mt.close(); err != nil { // the torrent is closed: this saves and unlocks
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// statusSocketDirs are the folders where a mount's status socket may be, in the order tried:
// the runtime folder (/run/gotfs for root, $XDG_RUNTIME_DIR/gotfs for others), where `gotfs
// status` finds it whatever cache folder the mount uses, then the cache folder (a user with
// no runtime folder).
func statusSocketDirs(root cache.Root) []string {
	var dirs []string
	if os.Geteuid() == 0 {
		dirs = append(dirs, "/run/gotfs/mounts")
	} else if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		dirs = append(dirs, filepath.Join(rt, "gotfs", "mounts"))
	}
	if root.Dir != "" {
		dirs = append(dirs, filepath.Join(root.Dir, "mounts"))
	}
	return dirs
}

// statusSocketName is the socket's name for the mount at mountpoint (a hash: mount points can
// be longer than a socket path may be).
func statusSocketName(mountpoint string) string {
	sum := sha1.Sum([]byte(mountpoint))
	return hex.EncodeToString(sum[:]) + ".sock"
}

// listenStatus opens the status socket in the first folder of statusSocketDirs that works.
func (s *mountSession) listenStatus() (net.Listener, error) {
	var errs []error
	for _, dir := range statusSocketDirs(s.root) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(dir, statusSocketName(s.fs.Dir()))
		os.Remove(path) // left by a crashed mount of the same folder
		ln, err := net.Listen("unix", path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return ln, nil
	}
	return nil, fmt.Errorf("status socket: %w", errors.Join(errs...))
}

// status is what `gotfs status` shows and the HTTP status page serves (/api/status).
func (s *mountSession) status() status.Mount {
	s.mu.Lock()
	entries := make([]status.Entry, 0, len(s.torrents))
	for _, mt := range s.torrents {
		entries = append(entries, status.Entry{Name: mt.name, Torrent: mt.tor})
	}
	s.mu.Unlock()
	out := status.Collect(entries)
	out.PID = os.Getpid()
	if s.fs != nil {
		c := s.fs.Counters()
		out.Mountpoint, out.Passthrough, out.PassthroughOpens, out.Reads = s.fs.Dir(), c.Passthrough, c.PassthroughOpens, c.Reads
	}
	l := rateLimitsOf(s.client)
	out.MaxDownloadRate, out.MaxUploadRate = l.MaxDownloadRate, l.MaxUploadRate
	return out
}

func newUnmountCmd(a *app) *cobra.Command {
	var lazy bool
	cmd := &cobra.Command{
		Use:   "unmount MOUNTPOINT",
		Short: "Unmount a gotfs mount (the mounting process then saves state and exits)",
		Example: `  gotfs unmount /mnt/t
  gotfs unmount --lazy /mnt/t   # even while files are open`,
		Args: exactArgs("MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			mp, err := filepath.Abs(args[0])
			if err != nil {
				return fmt.Errorf("mount point %s: %w", args[0], err)
			}
			err = fusefs.Unmount(mp, lazy)
			switch {
			case errors.Is(err, fusefs.ErrNotMounted):
				return fmt.Errorf("%s: not a mount point", mp)
			case errors.Is(err, fusefs.ErrNotGotfs):
				fstype, _ := fusefs.MountFSType(mp)
				return fmt.Errorf("%s: not a gotfs mount (it is %s); use umount for other filesystems", mp, fstype)
			case errors.Is(err, fusefs.ErrBusy):
				return fmt.Errorf("%s is busy (files are open on it): close them, or use gotfs unmount --lazy %s", mp, mp)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&lazy, "lazy", false, "detach now even if files are open (they keep working until closed)")
	return cmd
}

func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "status MOUNTPOINT",
		Short: "Show the torrents of a mount: verified bytes, peers, rates, waiting reads",
		Example: `  gotfs status /mnt/t
  gotfs status --json /mnt/t | jq '.torrents[].verified_bytes'`,
		Args: exactArgs("MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := controlSocketRoot(cacheDir)
			if err != nil {
				return err
			}
			st, err := queryStatus(cmd.Context(), root, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, st)
			}
			return printStatus(a.stdout, st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	bindControlSocketDir(cmd, &cacheDir)
	return cmd
}

// queryStatus asks the mount at mountpoint for its status over its control socket.
func queryStatus(ctx context.Context, root cache.Root, mountpoint string) (*status.Mount, error) {
	rep, err := callMount(ctx, root, mountpoint, controlRequest{Op: opStatus}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if rep.Status == nil {
		return nil, fmt.Errorf("status of %s: empty answer", mountpoint)
	}
	return rep.Status, nil
}

func printStatus(w io.Writer, st *status.Mount) error {
	fmt.Fprintf(w, "%s (pid %d), %d torrent(s)\n", st.Mountpoint, st.PID, len(st.Torrents))
	if st.Passthrough {
		fmt.Fprintf(w, "reads through gotfs: %d; opens of complete files read by the kernel from the cache: %d\n", st.Reads, st.PassthroughOpens)
	} else {
		fmt.Fprintf(w, "reads through gotfs: %d (passthrough off)\n", st.Reads)
	}
	if st.MaxDownloadRate > 0 || st.MaxUploadRate > 0 {
		fmt.Fprintf(w, "rate caps: download %s, upload %s\n", formatRate(st.MaxDownloadRate), formatRate(st.MaxUploadRate))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERIFIED\tPIECES\tPEERS\tDOWN\tUP\tWAITING READS")
	for _, t := range st.Torrents {
		pct := 100.0
		if t.Size > 0 {
			pct = 100 * float64(t.VerifiedBytes) / float64(t.Size)
		}
		fmt.Fprintf(tw, "%s\t%s / %s (%.1f%%)\t%d/%d\t%d\t%s/s\t%s/s\t%d\n", t.Name,
			formatSize(t.VerifiedBytes), formatSize(t.Size), pct, t.VerifiedPieces, t.Pieces, t.Peers,
			formatSize(int64(t.DownloadRate)), formatSize(int64(t.UploadRate)), t.WaitingReads)
		for _, w := range t.WebSeeds {
			state := ""
			if w.Dropped {
				state = " (dropped)"
			}
			fmt.Fprintf(tw, "  web seed %s%s\t%s fetched\t\t\t%s/s\t\t\n", w.URL, state, formatSize(w.Downloaded), formatSize(int64(w.DownloadRate)))
		}
	}
	return tw.Flush()
}

// unwrapPathErr drops the path an *os.PathError repeats.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fuseExtraProcs is how many scheduler slots (Go's Ps) a mount adds to GOMAXPROCS. go-fuse
// reads /dev/fuse with blocking read(2) calls, and a goroutine waiting there holds its P until
// the runtime's monitor takes it back, 20 µs or more later: meanwhile the engine's goroutines
// wait for a P although a core is free. With two more Ps, a cold cp of 1 GiB from a loopback
// swarm on 2 cores ran 9-15 % faster for the same CPU (DESIGN §12).
const fuseExtraProcs = 2

// addProcsForFUSE sets GOMAXPROCS to the runtime's default plus fuseExtraProcs before the
// mount starts (go-fuse sizes its reader pool from it), unless the GOMAXPROCS environment
// variable chose it. Starting from the default keeps repeated calls (tests mount many times
// in one process) from adding up.
func addProcsForFUSE() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + fuseExtraProcs)
}
