package main

import (
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/torrentfile"
)

func newCreateCmd(a *app) *cobra.Command {
	var (
		trackers, webSeeds          []string
		out, comment, source        string
		pieceLength                 int64
		private, noDate, force, prg bool
	)
	cmd := &cobra.Command{
		Use:   "create PATH",
		Short: "Make a .torrent from a file or a folder",
		Long: `Make a .torrent from a file or a folder. Files are ordered as mktorrent orders them, so the
same inputs and options give the same info hash. Each -t adds a tracker; separate several URLs
with commas in one -t to put them in the same tier (BEP 12).`,
		Example: `  gotfs create ./album -t udp://tracker.example:6969/announce -o album.torrent
  gotfs create movie.mkv -t http://a/announce,http://b/announce -t udp://c:80 --piece-length 1MiB`,
		Args: exactArgs("PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			if out == "" {
				out = filepath.Base(filepath.Clean(src)) + ".torrent"
			}
			toStdout := out == "-"
			if _, err := os.Stat(out); err == nil && !force && !toStdout {
				return fmt.Errorf("%s already exists (use --force to overwrite it)", out)
			}
			if err := checkPieceLength(pieceLength); err != nil {
				return err
			}
			opts := torrentfile.CreateOptions{
				WebSeeds: webSeeds, PieceLength: pieceLength, Private: private, Comment: comment,
				Source: source, CreatedBy: "gotfs " + buildVersion().Module, NoDate: noDate,
			}
			for _, t := range trackers {
				var tier []string
				for _, u := range strings.Split(t, ",") {
					if u = strings.TrimSpace(u); u == "" {
						continue
					}
					if err := checkURL(u, "http", "https", "udp"); err != nil {
						return fmt.Errorf("--tracker %q: %w", u, err)
					}
					tier = append(tier, u)
				}
				if len(tier) > 0 {
					opts.Trackers = append(opts.Trackers, tier)
				}
			}
			for _, u := range webSeeds {
				if err := checkURL(u, "http", "https"); err != nil {
					return fmt.Errorf("--web-seed %q: %w", u, err)
				}
			}
			var bar *progress
			if prg {
				bar = newProgress(a.stderr, "hashing")
				opts.Progress = func(done, total int64) { bar.update(done, total, "") }
			}
			mi, data, err := torrentfile.Create(cmd.Context(), src, opts)
			if bar != nil {
				bar.finish()
			}
			if err != nil {
				return err
			}
			summary := fmt.Sprintf("%s: %s, %d pieces of %s, info hash %x\n", out, formatSize(mi.Info.Length),
				mi.Info.NumPieces(), formatSize(mi.Info.PieceLength), mi.InfoHash)
			if toStdout {
				// The torrent goes to standard output; the summary to standard error.
				if _, err := a.stdout.Write(data); err != nil {
					return fmt.Errorf("write torrent: %w", err)
				}
				fmt.Fprint(a.stderr, strings.Replace(summary, "-: ", "torrent: ", 1))
				return nil
			}
			if err := writeFileAtomic(out, data, force); err != nil {
				return err
			}
			fmt.Fprint(a.stdout, summary)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&trackers, "tracker", "t", nil, "announce URL; repeat for more tiers, commas for one tier")
	f.StringVarP(&out, "output", "o", "", "where to write the .torrent (default NAME.torrent; - for standard output)")
	f.Var(sizeValue{&pieceLength}, "piece-length", "piece size, a power of two such as 256KiB or 1MiB (default: automatic)")
	f.BoolVar(&private, "private", false, "mark the torrent private (no DHT or PEX)")
	f.StringVarP(&comment, "comment", "c", "", "comment")
	f.StringArrayVarP(&webSeeds, "web-seed", "w", nil, "web seed URL (BEP 19); repeatable")
	f.StringVar(&source, "source", "", "source tag (changes the info hash, for cross-seeding)")
	f.BoolVar(&noDate, "no-date", false, "leave out the creation date")
	f.BoolVar(&force, "force", false, "overwrite the output file if it exists")
	f.BoolVar(&prg, "progress", isTerminal(a.stderr), "show hashing progress")
	return cmd
}

// checkURL refuses a URL that is not absolute with a host and one of the schemes.
func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if !slices.Contains(schemes, strings.ToLower(u.Scheme)) {
		return fmt.Errorf("want a URL that starts with %s://", strings.Join(schemes, ":// or "))
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("the URL has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is not from 1 to 65535", p)
		}
	} else if strings.EqualFold(u.Scheme, "udp") {
		return errors.New("a udp tracker URL needs a port")
	}
	return nil
}

// checkPieceLength refuses a --piece-length that no client would accept (0 picks one).
func checkPieceLength(n int64) error {
	const largest = torrentfile.MaxPieceLength + 1 // a power of two above the largest (INT_MAX/2)
	switch {
	case n == 0:
		return nil
	case n < 16<<10:
		return fmt.Errorf("--piece-length %s: too small, the least is 16 KiB", formatSize(n))
	case n >= largest:
		return fmt.Errorf("--piece-length %s: too large, the most is %s", formatSize(n), formatSize(largest/2))
	case n&(n-1) != 0:
		lower := int64(1) << (63 - bits.LeadingZeros64(uint64(n)))
		return fmt.Errorf("--piece-length %s: not a power of two (%s or %s would do)", formatSize(n), formatSize(lower), formatSize(lower*2))
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file and a rename; without overwrite
// it refuses to replace an existing file.
func writeFileAtomic(path string, data []byte, overwrite bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".gotfs-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !overwrite {
		// Link fails if path exists, so a file created meanwhile is never replaced.
		if err := os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s already exists (use --force to overwrite it)", path)
			}
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
