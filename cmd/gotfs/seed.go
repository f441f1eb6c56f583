package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/torrentfile"
)

func newSeedCmd(a *app) *cobra.Command {
	var ef engineFlags
	cmd := &cobra.Command{
		Use:   "seed TORRENT PATH",
		Short: "Verify existing data against a torrent and seed it",
		Long: `Verify PATH against the torrent, then upload to other peers until interrupted. PATH is the
torrent's file or folder itself (named as in the torrent), or the folder that holds it.`,
		Example: `  gotfs seed album.torrent ~/Music/album
  gotfs seed movie.torrent ~/Videos`,
		Args: exactArgs("TORRENT", "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			mi, raw, err := readTorrentFile(a, args[0])
			if err != nil {
				return err
			}
			dataDir, err := seedDataDir(mi, args[1])
			if err != nil {
				return err
			}
			root, err := ef.root()
			if err != nil {
				return err
			}
			peers, err := ef.peerAddrs()
			if err != nil {
				return err
			}
			if err := prepareCache(root, mi, raw); err != nil {
				return err
			}
			st, err := cache.Open(&mi.Info, cache.Options{
				DataDir: dataDir, RecordPath: downloadRecordPath(root, mi.InfoHash, dataDir),
				InfoHash: mi.InfoHash, ReadOnly: true, Logger: a.log,
			})
			if err != nil {
				return err
			}
			defer st.Close()
			bar := newCountProgress(a.stderr, "verifying")
			err = st.Check(ctx, func(done, total int) { bar.update(int64(done), int64(total), "pieces") })
			bar.finish()
			if err != nil {
				if ctx.Err() != nil {
					return errInterrupted
				}
				return err
			}
			n := mi.Info.NumPieces()
			have := st.VerifiedCount()
			if have == 0 {
				return fmt.Errorf("%s holds none of %s's data (0 of %d pieces verify)", args[1], mi.Info.Name, n)
			}
			fmt.Fprintf(a.stderr, "%d of %d pieces verified\n", have, n)
			eng, err := ef.start(ctx, a)
			if err != nil {
				return err
			}
			defer eng.Close()
			tor, err := eng.client.AddTorrent(mi, fetch.TorrentOptions{Storage: st, Peers: peers})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "listening on port %s\n", strconv.Itoa(int(eng.client.Port())))
			return seedUntilDone(ctx, a, tor)
		},
	}
	ef.bind(cmd)
	return cmd
}

// seedDataDir finds the folder that holds the torrent's top-level file or folder: PATH is that
// file or folder itself (named as in the torrent), or a folder that holds it.
func seedDataDir(mi *torrentfile.Metainfo, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("seed path %s: %w", p, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("seed path: %w", err)
	}
	name := mi.Info.Name
	if filepath.Base(abs) == name {
		return filepath.Dir(abs), nil
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(abs, name)); err == nil {
			return abs, nil
		}
	}
	return "", fmt.Errorf("seed path %s: expected the torrent's %q itself or a folder that holds it", p, name)
}

func newDownloadPieceCmd(a *app) *cobra.Command {
	var (
		ef  engineFlags
		out string
	)
	cmd := &cobra.Command{
		Use:     "download-piece TORRENT|MAGNET INDEX",
		Short:   "Fetch and verify one piece",
		Example: `  gotfs download-piece ubuntu.torrent 0 -o piece0.bin`,
		Args:    exactArgs("TORRENT", "INDEX"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Everything the command line says is checked before a socket is opened.
			idx, err := strconv.Atoi(args[1])
			if err != nil || idx < 0 {
				return newUsageError(cmd, "piece index %q is not a number from 0", args[1])
			}
			src, err := readTorrentSource(a, args[0])
			if err != nil {
				return err
			}
			if src.mi != nil {
				if err := checkPieceIndex(src.mi, idx); err != nil {
					return err
				}
			}
			if out != "" {
				if _, err := os.Stat(out); err == nil {
					return fmt.Errorf("%s already exists", out)
				}
			}
			root, err := ef.root()
			if err != nil {
				return err
			}
			peers, err := ef.peerAddrs()
			if err != nil {
				return err
			}
			eng, mi, err := ef.startAndResolve(ctx, a, src)
			if err != nil {
				return err
			}
			defer eng.Close()
			if err := checkPieceIndex(mi, idx); err != nil {
				return err
			}
			if out == "" {
				out = fmt.Sprintf("%s.piece-%d", mi.Info.Name, idx)
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s already exists", out)
			}
			// The piece lands in the cache, where a later mount or download finds it.
			opts := root.Options(mi.InfoHash)
			opts.Logger = a.log
			st, err := cache.Open(&mi.Info, opts)
			if err != nil {
				return err
			}
			defer st.Close()
			tor, err := eng.client.AddTorrent(mi, fetch.TorrentOptions{Storage: st, Peers: peers})
			if err != nil {
				return err
			}
			if err := tor.WaitPiece(ctx, idx); err != nil {
				if ctx.Err() != nil {
					return errInterrupted
				}
				return err
			}
			buf, err := st.ReadPiece(idx, nil)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(out, buf, false); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "piece %d (%s) verified and written to %s\n", idx, formatSize(int64(len(buf))), out)
			return nil
		},
	}
	ef.bind(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the piece to (default NAME.piece-INDEX)")
	return cmd
}

// checkPieceIndex refuses a piece index the torrent does not have.
func checkPieceIndex(mi *torrentfile.Metainfo, idx int) error {
	if idx >= mi.Info.NumPieces() {
		return fmt.Errorf("piece %d: %s has pieces 0 to %d", idx, mi.Info.Name, mi.Info.NumPieces()-1)
	}
	return nil
}
