package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			if out == "" {
				out = filepath.Base(filepath.Clean(src)) + ".torrent"
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("%s already exists (use --force to overwrite it)", out)
			}
			if pieceLength != 0 && (pieceLength < 16<<10 || pieceLength&(pieceLength-1) != 0) {
				return fmt.Errorf("--piece-length must be a power of two of at least 16 KiB, not %d", pieceLength)
			}
			opts := torrentfile.CreateOptions{
				WebSeeds: webSeeds, PieceLength: pieceLength, Private: private, Comment: comment,
				Source: source, CreatedBy: "gotfs " + version, NoDate: noDate,
			}
			for _, t := range trackers {
				var tier []string
				for _, u := range strings.Split(t, ",") {
					if u = strings.TrimSpace(u); u != "" {
						tier = append(tier, u)
					}
				}
				if len(tier) > 0 {
					opts.Trackers = append(opts.Trackers, tier)
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
			if err := writeFileAtomic(out, data, force); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: %s, %d pieces of %s, info hash %x\n", out, formatSize(mi.Info.Length),
				mi.Info.NumPieces(), formatSize(mi.Info.PieceLength), mi.InfoHash)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&trackers, "tracker", "t", nil, "announce URL; repeat for more tiers, commas for one tier")
	f.StringVarP(&out, "output", "o", "", "where to write the .torrent (default NAME.torrent)")
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
