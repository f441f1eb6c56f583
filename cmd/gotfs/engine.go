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
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/dht"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/torrentfile"
)

// defaultListen is tried first for the peer port; when it is taken any free port is used.
const defaultListen = ":6881"

// engineFlags are the flags every command that talks to peers shares.
type engineFlags struct {
	listen   string
	peers    []string
	maxPeers int
	noUpload bool
	noWeb    bool
	// encryption is the MSE/PE policy (--encryption).
	encryption fetch.Encryption
	// transport is --transport; noUTP (--no-utp) makes it tcp.
	transport fetch.Transport
	noUTP     bool
	cacheDir  string
	// cacheSize bounds the verified bytes kept (mount only: a download keeps all it fetched).
	cacheSize int64
	// maxDown and maxUp cap the client's bytes per second from and to peers (0 = none).
	maxDown, maxUp int64

	noDHT        bool
	dhtListen    string
	dhtBootstrap []string

	noLSD         bool
	noPortMapping bool
}

func (f *engineFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "address to accept peers on (default "+defaultListen+", or any free port)")
	fl.StringArrayVar(&f.peers, "peer", nil, "extra peer to connect to, host:port (repeatable)")
	fl.IntVar(&f.maxPeers, "max-peers", 50, "most peers to connect to per torrent")
	fl.BoolVar(&f.noUpload, "no-upload", false, "never upload to other peers")
	fl.BoolVar(&f.noWeb, "no-webseeds", false, "do not download from the torrent's web seeds (url-list, httpseeds)")
	fl.Var(encryptionValue{&f.encryption}, "encryption", "protocol encryption (MSE/PE): prefer (accept both, dial encrypted first and fall back to plaintext), require (encrypted only) or off (plaintext only)")
	fl.Var(transportValue{&f.transport}, "transport", "peer transports: both (accept TCP and uTP; dial uTP first to peers that advertise it, else TCP first, each falling back to the other), utp or tcp (only that one)")
	fl.BoolVar(&f.noUTP, "no-utp", false, "do not use uTP: the same as --transport tcp")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache folder (default $XDG_CACHE_HOME/gotfs)")
	fl.BoolVar(&f.noDHT, "no-dht", false, "do not use the DHT to find peers")
	fl.StringVar(&f.dhtListen, "dht-listen", "", "UDP address of the DHT node (default: the peer listen address); no host (:6881) runs the IPv4 and IPv6 DHTs on that port, an IPv4 or IPv6 host only that family's")
	fl.StringSliceVar(&f.dhtBootstrap, "dht-bootstrap", nil, "DHT nodes to start from, host:port,... (default: the public routers)")
	bindRateFlags(cmd, &f.maxDown, &f.maxUp)
	fl.BoolVar(&f.noLSD, "no-lsd", false, "do not find peers on the local network (BEP 14 local service discovery)")
	fl.BoolVar(&f.noPortMapping, "no-port-mapping", false, "do not ask the router to forward the peer port (PCP, NAT-PMP, UPnP)")
}

// bindCacheSize adds --cache-size, for commands whose data lives in the cache.
func (f *engineFlags) bindCacheSize(cmd *cobra.Command) {
	cmd.Flags().Var(sizeValue{&f.cacheSize}, "cache-size", "most verified bytes to keep in the cache, e.g. 10GiB (default: no bound); the least recently read pieces go first")
}

// encryptionValue is a pflag.Value for --encryption: a bad value is a usage error.
type encryptionValue struct{ e *fetch.Encryption }

func (v encryptionValue) String() string {
	if v.e == nil {
		return fetch.EncryptionPrefer.String()
	}
	return v.e.String()
}

func (v encryptionValue) Set(s string) error {
	e, err := fetch.ParseEncryption(s)
	if err != nil {
		return err
	}
	*v.e = e
	return nil
}

func (v encryptionValue) Type() string { return "prefer|require|off" }

// transportValue is a pflag.Value for --transport: a bad value is a usage error.
type transportValue struct{ t *fetch.Transport }

func (v transportValue) String() string {
	if v.t == nil {
		return fetch.TransportBoth.String()
	}
	return v.t.String()
}

func (v transportValue) Set(s string) error {
	t, err := fetch.ParseTransport(s)
	if err != nil {
		return err
	}
	*v.t = t
	return nil
}

func (v transportValue) Type() string { return "both|utp|tcp" }

// root returns the cache folder.
func (f *engineFlags) root() (cache.Root, error) {
	if f.cacheDir != "" {
		abs, err := filepath.Abs(f.cacheDir)
		if err != nil {
			return cache.Root{}, fmt.Errorf("cache folder %s: %w", f.cacheDir, err)
		}
		return cache.Root{Dir: abs}, nil
	}
	r, err := cache.DefaultRoot()
	if errors.Is(err, cache.ErrNoDefaultRoot) {
		return r, fmt.Errorf("%w: give the cache folder with --cache-dir", err)
	}
	return r, err
}

// peerAddrs parses the --peer flags.
func (f *engineFlags) peerAddrs() ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, p := range f.peers {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			addrs, lerr := net.ResolveTCPAddr("tcp", p)
			if lerr != nil {
				return nil, fmt.Errorf("--peer %q: want host:port", p)
			}
			ap = addrs.AddrPort()
		}
		out = append(out, ap)
	}
	return out, nil
}

// engine is a running peer engine: the client and, unless --no-dht, its DHT node; unless
// turned off, local service discovery and the router's port mapping (local.go).
type engine struct {
	client *fetch.Client
	dht    *dht.Server
	local  localDiscovery
}

// Close removes the port mappings, stops local discovery and the client, then the DHT node
// (saving its routing table).
func (e *engine) Close() error {
	err := e.local.close()
	err = errors.Join(err, e.client.Close())
	if e.dht != nil {
		err = errors.Join(err, e.dht.Close())
	}
	return err
}

// start opens the peer sockets, starts the DHT node (unless --no-dht; on the uTP socket's
// port unless --dht-listen names another address or uTP is off) and the peer engine.
func (f *engineFlags) start(ctx context.Context, a *app) (*engine, error) {
	e := &engine{}
	transport := f.transport
	if f.noUTP {
		transport = fetch.TransportTCP
	}
	listen := f.listen
	var lis *fetch.Listener
	var err error
	if listen != "" {
		lis, err = fetch.Listen(listen, transport, fetch.ListenOptions{Logger: a.log})
	} else {
		listen = defaultListen
		if lis, err = fetch.Listen(listen, transport, fetch.ListenOptions{Logger: a.log}); err != nil {
			listen = ":0"
			lis, err = fetch.Listen(listen, transport, fetch.ListenOptions{Logger: a.log})
		}
	}
	if err != nil {
		return nil, err
	}
	if !f.noDHT {
		node, err := f.startDHT(a, listen, lis)
		if err != nil {
			lis.Close()
			return nil, err
		}
		e.dht = node
		go bootstrapDHT(ctx, a, node)
	}
	cfg := fetch.Config{Listener: lis, MaxPeers: f.maxPeers, NoUpload: f.noUpload, Logger: a.log,
		CacheLimit: f.cacheSize, DHT: e.dht, NoWebSeeds: f.noWeb, Encryption: f.encryption,
		MaxDownloadRate: f.maxDown, MaxUploadRate: f.maxUp}
	e.client, err = fetch.NewClient(cfg) // it owns lis, also when it fails
	if err != nil {
		if e.dht != nil {
			e.dht.Close()
		}
		return nil, err
	}
	e.local.start(a, f, e)
	return e, nil
}

// startDHT starts the DHT node: on the uTP socket of the peer port (its non-uTP datagrams)
// unless --dht-listen names an address or uTP is off; then on --dht-listen, or the UDP twin of
// the peer address listen, or any port when that is taken.
func (f *engineFlags) startDHT(a *app, listen string, lis *fetch.Listener) (*dht.Server, error) {
	root, err := f.root()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache folder: %w", err)
	}
	cfg := dht.Config{Addr: f.dhtListen, StatePath: filepath.Join(root.Dir, "dht.state"), Logger: a.log}
	if f.dhtBootstrap != nil {
		cfg.Bootstrap = f.dhtBootstrap
	}
	if c4, c6 := lis.DHTConns(); f.dhtListen == "" && (c4 != nil || c6 != nil) {
		cfg.Conn, cfg.Conn6 = c4, c6
	} else if cfg.Addr == "" {
		cfg.Addr = listen
	}
	node, err := dht.New(cfg)
	if err != nil && f.dhtListen == "" && cfg.Conn == nil && cfg.Conn6 == nil {
		// The peer port's UDP twin is taken: any port will do for the DHT.
		host, _, _ := net.SplitHostPort(cfg.Addr)
		cfg.Addr = net.JoinHostPort(host, "0")
		node, err = dht.New(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("start DHT node: %w", err)
	}
	return node, nil
}

// bootstrapDHT joins the DHT, trying again with backoff while no node answers (the
// bootstrap nodes may not be up yet, or the network may come later).
func bootstrapDHT(ctx context.Context, a *app, node *dht.Server) {
	wait := 2 * time.Second
	for {
		err := node.Bootstrap(ctx)
		if err == nil && node.Stats().Nodes > 0 {
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Info("DHT bootstrap: no node answered yet", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Minute)
	}
}

// torrentSource is a TORRENT|MAGNET argument, read and checked before any socket is opened: a
// .torrent file (or - for standard input) is parsed at once; a magnet link's metadata comes
// later, from the cache or from peers (resolve).
type torrentSource struct {
	arg    string
	magnet *torrentfile.Magnet   // set for a magnet link
	mi     *torrentfile.Metainfo // set for a .torrent file
	raw    []byte                // the .torrent file's bytes
}

// readTorrentSource reads and checks a TORRENT|MAGNET argument.
func readTorrentSource(a *app, arg string) (*torrentSource, error) {
	if isMagnet(arg) {
		m, err := torrentfile.ParseMagnet(arg)
		if err != nil {
			return nil, err
		}
		return &torrentSource{arg: arg, magnet: m}, nil
	}
	mi, raw, err := readTorrentFile(a, arg)
	if err != nil {
		return nil, err
	}
	return &torrentSource{arg: arg, mi: mi, raw: raw}, nil
}

// resolve returns the source's metainfo and .torrent bytes (for a magnet link: from the cache
// when an earlier run kept it, else from peers (BEP 9), saying what it waits for), and keeps
// the metainfo in the cache (prepareCache).
func (f *engineFlags) resolve(ctx context.Context, a *app, e *engine, src *torrentSource) (*torrentfile.Metainfo, []byte, error) {
	mi, raw, err := f.load(ctx, a, e, src)
	if err != nil {
		return nil, nil, err
	}
	root, err := f.root()
	if err != nil {
		return nil, nil, err
	}
	if err := prepareCache(root, mi, raw); err != nil {
		return nil, nil, err
	}
	return mi, raw, nil
}

// startAndResolve starts the engine and resolves src with it; the caller closes the engine.
func (f *engineFlags) startAndResolve(ctx context.Context, a *app, src *torrentSource) (*engine, *torrentfile.Metainfo, error) {
	eng, err := f.start(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	mi, _, err := f.resolve(ctx, a, eng, src)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	return eng, mi, nil
}

// load is resolve without the cache bookkeeping.
func (f *engineFlags) load(ctx context.Context, a *app, e *engine, src *torrentSource) (*torrentfile.Metainfo, []byte, error) {
	if src.magnet == nil {
		return src.mi, src.raw, nil
	}
	m := src.magnet
	root, err := f.root()
	if err != nil {
		return nil, nil, err
	}
	var tiers [][]string
	for _, u := range m.Trackers {
		tiers = append(tiers, []string{u})
	}
	if raw, err := root.LoadMetainfo(m.InfoHash); err == nil {
		if mi, err := torrentfile.ParseBytes(raw); err == nil && mi.InfoHash == m.InfoHash {
			return mi, raw, nil
		}
		if mi, err := torrentfile.FromInfo(raw, tiers, m.WebSeeds); err == nil && mi.InfoHash == m.InfoHash {
			b, err := mi.Encode()
			return mi, b, err
		}
	}
	peers, err := f.peerAddrs()
	if err != nil {
		return nil, nil, err
	}
	name := m.Name
	if name == "" {
		name = m.InfoHash.Hex()
	}
	fmt.Fprintf(a.stderr, "fetching the metadata of %s from peers (trackers: %d, DHT: %v)\n", name, len(m.Trackers), e.dht != nil)
	found := 0
	mi, err := e.client.FetchMetadata(ctx, m, fetch.MetadataOptions{Peers: peers, OnPeers: func(n int) {
		if n > found {
			found = n
			a.log.Info("peers found for metadata", "peers", n)
		}
	}})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, errInterrupted
		}
		return nil, nil, err
	}
	raw, err := mi.Encode()
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(a.stderr, "metadata of %s received: %s in %d files\n", mi.Info.Name, formatSize(mi.Info.Length), len(mi.Info.VisibleFiles()))
	return mi, raw, nil
}

// downloadRecordPath names the completion record of a download of hash into dataDir.
func downloadRecordPath(root cache.Root, hash [20]byte, dataDir string) string {
	sum := sha1.Sum([]byte(dataDir))
	return filepath.Join(root.TorrentDir(hash), "download-"+hex.EncodeToString(sum[:8])+".state")
}

// checkWritable fails early, with a clear error, when dir cannot be written.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".gotfs-write-test-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("output folder %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// errInterrupted is returned when a signal ended a command early.
var errInterrupted = errors.New("interrupted")

// readTorrentFile reads a .torrent file, or standard input for "-", keeping its raw bytes for
// the cache. Its errors name the file once: "x.torrent: no such file or directory",
// "x.torrent: missing info dictionary".
func readTorrentFile(a *app, path string) (*torrentfile.Metainfo, []byte, error) {
	var mi *torrentfile.Metainfo
	var raw []byte
	var err error
	if path == "-" {
		path = "standard input"
		raw, err = io.ReadAll(io.LimitReader(a.stdin, torrentfile.MaxTorrentSize+1))
	} else {
		raw, err = readFileLimited(path, torrentfile.MaxTorrentSize+1)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	if mi, err = torrentfile.ParseBytes(raw); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return mi, raw, nil
}

// readFileLimited reads at most limit bytes of the file at path (a torrent named by mistake
// as a 10 GiB video must not be read whole).
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, errors.New("is a folder, not a .torrent file")
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// prepareCache makes the torrent's cache folder and saves its metainfo there, so `cache ls`
// can name it and a later mount or magnet can start from it.
func prepareCache(root cache.Root, mi *torrentfile.Metainfo, raw []byte) error {
	if err := os.MkdirAll(root.TorrentDir(mi.InfoHash), 0o755); err != nil {
		return fmt.Errorf("cache folder: %w", err)
	}
	if err := root.SaveMetainfo(mi.InfoHash, mi.InfoBytes, raw); err != nil {
		return fmt.Errorf("cache metainfo: %w", err)
	}
	return nil
}
