package main

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/cache"
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
	cacheDir string
	// cacheSize bounds the verified bytes kept (mount only: a download keeps all it fetched).
	cacheSize int64
}

func (f *engineFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "address to accept peers on (default "+defaultListen+", or any free port)")
	fl.StringArrayVar(&f.peers, "peer", nil, "extra peer to connect to, host:port (repeatable)")
	fl.IntVar(&f.maxPeers, "max-peers", 50, "most peers to connect to per torrent")
	fl.BoolVar(&f.noUpload, "no-upload", false, "never upload to other peers")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache folder (default $XDG_CACHE_HOME/gotfs)")
}

// bindCacheSize adds --cache-size, for commands whose data lives in the cache.
func (f *engineFlags) bindCacheSize(cmd *cobra.Command) {
	cmd.Flags().Var(sizeValue{&f.cacheSize}, "cache-size", "most verified bytes to keep in the cache, e.g. 10GiB (default: no bound); the least recently read pieces go first")
}

// root returns the cache folder.
func (f *engineFlags) root() (cache.Root, error) {
	if f.cacheDir != "" {
		abs, err := filepath.Abs(f.cacheDir)
		if err != nil {
			return cache.Root{}, fmt.Errorf("cache folder %s: %w", f.cacheDir, err)
		}
		return cache.Root{Dir: abs}, nil
	}
	return cache.DefaultRoot()
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

// client starts the peer engine.
func (f *engineFlags) client(a *app) (*fetch.Client, error) {
	cfg := fetch.Config{ListenAddr: f.listen, MaxPeers: f.maxPeers, NoUpload: f.noUpload, Logger: a.log, CacheLimit: f.cacheSize}
	if cfg.ListenAddr != "" {
		return fetch.NewClient(cfg)
	}
	cfg.ListenAddr = defaultListen
	c, err := fetch.NewClient(cfg)
	if err == nil {
		return c, nil
	}
	cfg.ListenAddr = ":0"
	return fetch.NewClient(cfg)
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

// interrupted is returned when a signal ended a command early.
var errInterrupted = errors.New("interrupted")

// loadTorrent reads a .torrent file, keeping its raw bytes for the cache.
func loadTorrent(path string) (*torrentfile.Metainfo, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read torrent: %w", err)
	}
	mi, err := torrentfile.ParseBytes(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return mi, raw, nil
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
