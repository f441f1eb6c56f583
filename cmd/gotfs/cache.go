package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/torrentfile"
)

func newCacheCmd(a *app) *cobra.Command {
	var cacheDir string
	root := func() (cache.Root, error) {
		ef := engineFlags{cacheDir: cacheDir}
		return ef.root()
	}
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List, verify and remove what the cache holds",
		Long: `The cache ($XDG_CACHE_HOME/gotfs, or --cache-dir) keeps one folder per torrent: its metainfo,
the verified pieces of mounts and downloaded pieces, and a completion record.`,
	}
	cmd.PersistentFlags().StringVar(&cacheDir, "cache-dir", "", "cache folder (default $XDG_CACHE_HOME/gotfs)")

	var asJSON bool
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List the cached torrents with their size on disk and how much is verified",
		Example: "  gotfs cache ls\n  gotfs cache ls --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := root()
			if err != nil {
				return err
			}
			entries, err := r.List()
			if err != nil {
				return err
			}
			if asJSON {
				type entryJSON struct {
					InfoHash       string  `json:"info_hash"`
					Name           string  `json:"name"`
					TotalSize      int64   `json:"total_size"`
					DiskUsage      int64   `json:"disk_usage"`
					VerifiedBytes  int64   `json:"verified_bytes"`
					VerifiedPieces int     `json:"verified_pieces"`
					Pieces         int     `json:"pieces"`
					Percent        float64 `json:"percent_verified"`
				}
				out := []entryJSON{}
				for _, e := range entries {
					out = append(out, entryJSON{hex.EncodeToString(e.InfoHash[:]), e.Name, e.TotalSize, e.DiskUsage,
						e.VerifiedBytes, e.VerifiedPieces, e.Pieces, percent(e)})
				}
				return writeJSON(a.stdout, out)
			}
			if len(entries) == 0 {
				fmt.Fprintf(a.stdout, "%s: empty\n", r.Dir)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INFO HASH\tNAME\tSIZE\tON DISK\tVERIFIED")
			for _, e := range entries {
				name := e.Name
				if name == "" {
					name = "(no metainfo)"
				}
				fmt.Fprintf(tw, "%x\t%s\t%s\t%s\t%.1f%%\n", e.InfoHash, name, formatSize(e.TotalSize), formatSize(e.DiskUsage), percent(e))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	rm := &cobra.Command{
		Use:     "rm INFOHASH...|all",
		Short:   "Remove cached torrents",
		Example: "  gotfs cache rm 5327e6df23e396a089284116bf6d9a74b5da29cd\n  gotfs cache rm all",
		Args:    minArgs("INFOHASH (or all)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := root()
			if err != nil {
				return err
			}
			hashes, err := cachedHashes(r, args)
			if err != nil {
				return err
			}
			for _, h := range hashes {
				// A running mount holds its torrents' locks: their caches stay.
				lock, err := r.Lock(h)
				if errors.Is(err, cache.ErrLocked) {
					return err
				} // else (a symlink, say) Remove says what is wrong
				err = r.Remove(h)
				lock.Close()
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "removed %x\n", h)
			}
			return nil
		},
	}

	verify := &cobra.Command{
		Use:   "verify INFOHASH...|all",
		Short: "Re-hash cached pieces; drop the ones that no longer match so they are fetched again",
		Args:  minArgs("INFOHASH (or all)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := root()
			if err != nil {
				return err
			}
			hashes, err := cachedHashes(r, args)
			if err != nil {
				return err
			}
			for _, h := range hashes {
				if err := verifyCached(cmd, a, r, h); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(ls, rm, verify)
	return cmd
}

func percent(e cache.Entry) float64 {
	if e.Pieces == 0 {
		return 0
	}
	return 100 * float64(e.VerifiedPieces) / float64(e.Pieces)
}

// cachedHashes reads INFOHASH arguments, or "all" for every cached torrent.
func cachedHashes(r cache.Root, args []string) ([]torrentfile.Hash, error) {
	if len(args) == 1 && args[0] == "all" {
		entries, err := r.List()
		if err != nil {
			return nil, err
		}
		hashes := make([]torrentfile.Hash, 0, len(entries))
		for _, e := range entries {
			hashes = append(hashes, e.InfoHash)
		}
		return hashes, nil
	}
	hashes := make([]torrentfile.Hash, 0, len(args))
	for _, s := range args {
		h, err := parseInfoHash(s)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(r.TorrentDir(h)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%x: not in the cache (%s); gotfs cache ls lists what is", h, r.Dir)
		}
		hashes = append(hashes, h)
	}
	return hashes, nil
}

// parseInfoHash reads a 40-hex-digit info hash.
func parseInfoHash(s string) (torrentfile.Hash, error) {
	var h torrentfile.Hash
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not an info hash (40 hex digits)", s)
	}
	copy(h[:], b)
	return h, nil
}

// verifyCached re-hashes every piece of one cached torrent.
func verifyCached(cmd *cobra.Command, a *app, r cache.Root, h torrentfile.Hash) error {
	raw, err := r.LoadMetainfo(h)
	if err != nil {
		return fmt.Errorf("verify %x: %w", h, err)
	}
	info, err := loadCachedInfo(raw, h)
	if err != nil {
		return fmt.Errorf("verify %x: %w", h, err)
	}
	lock, err := r.Lock(h)
	if err != nil {
		return err
	}
	defer lock.Close()
	opts := r.Options(h)
	opts.Logger = a.log
	st, err := cache.Open(info, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	before := st.VerifiedCount()
	bar := newCountProgress(a.stderr, "verifying")
	err = st.Check(cmd.Context(), func(done, total int) { bar.update(int64(done), int64(total), "pieces") })
	bar.finish()
	if err != nil {
		return err
	}
	after := st.VerifiedCount()
	fmt.Fprintf(a.stdout, "%x %s: %d of %d pieces verified", h, info.Name, after, info.NumPieces())
	if after < before {
		fmt.Fprintf(a.stdout, " (%d damaged pieces dropped; they will be fetched again)", before-after)
	}
	fmt.Fprintln(a.stdout)
	return nil
}

// loadCachedInfo parses what the cache saved: a whole .torrent, or only the info dictionary.
func loadCachedInfo(raw []byte, h torrentfile.Hash) (*torrentfile.Info, error) {
	if mi, err := torrentfile.ParseBytes(raw); err == nil && mi.InfoHash == h {
		return &mi.Info, nil
	}
	info, got, err := torrentfile.ParseInfo(raw)
	if err != nil {
		return nil, err
	}
	if got != h {
		return nil, fmt.Errorf("cached metainfo does not match its info hash")
	}
	return info, nil
}
