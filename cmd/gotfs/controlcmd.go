package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// The commands that change a running mount over its control socket: add, remove, set.

// bindControlSocketDir adds --cache-dir, where a mount without a runtime folder keeps its
// socket.
func bindControlSocketDir(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "cache-dir", "", "cache folder the mount uses, if it has no runtime folder (/run/gotfs, $XDG_RUNTIME_DIR/gotfs)")
}

func newAddCmd(a *app) *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "add TORRENT|MAGNET MOUNTPOINT",
		Short: "Show one more torrent in a running mount",
		Long: `Add a torrent to a running mount: its folder (or file) appears at the mount's root. A
.torrent file is read here and sent to the mount; a magnet link's metadata is fetched by the
mount (from its cache, or from peers), and this command waits for it.`,
		Example: `  gotfs add movie.torrent /mnt/t
  gotfs add 'magnet:?xt=urn:btih:...' /mnt/t`,
		Args: exactArgs("TORRENT", "MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := controlSocketRoot(cacheDir)
			if err != nil {
				return err
			}
			req := controlRequest{Op: opAdd, Source: args[0]}
			if !isMagnet(args[0]) {
				_, raw, err := readTorrentFile(a, args[0])
				if err != nil {
					return err
				}
				req.Torrent = raw
			}
			rep, err := callMount(cmd.Context(), root, args[1], req, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added %s\n", rep.Name)
			return nil
		},
	}
	bindControlSocketDir(cmd, &cacheDir)
	return cmd
}

func newRemoveCmd(a *app) *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "remove NAME|INFOHASH MOUNTPOINT",
		Short: "Take a torrent out of a running mount",
		Long: `Remove a torrent from a running mount, by its name at the mount's root or its info hash.
Its entry goes at once. Files already open from it keep working until they are closed (as
with a deleted file); then the torrent stops, its state is saved and its cache is free for
other processes. The cached data stays (gotfs cache rm deletes it).`,
		Example: `  gotfs remove Movie /mnt/t
  gotfs remove 5327e6df23e396a089284116bf6d9a74b5da29cd /mnt/t`,
		Args: exactArgs("NAME|INFOHASH", "MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := controlSocketRoot(cacheDir)
			if err != nil {
				return err
			}
			rep, err := callMount(cmd.Context(), root, args[1], controlRequest{Op: opRemove, Source: args[0]}, 0)
			if err != nil {
				return err
			}
			if rep.OpenFiles > 0 {
				fmt.Fprintf(a.stdout, "removed %s; %d open file(s) keep it running until closed\n", rep.Name, rep.OpenFiles)
			} else {
				fmt.Fprintf(a.stdout, "removed %s\n", rep.Name)
			}
			return nil
		},
	}
	bindControlSocketDir(cmd, &cacheDir)
	return cmd
}

func newSetCmd(a *app) *cobra.Command {
	var cacheDir string
	var down, up int64
	cmd := &cobra.Command{
		Use:   "set MOUNTPOINT --max-download-rate RATE|--max-upload-rate RATE",
		Short: "Change the rate caps of a running mount",
		Long: `Change a running mount's bandwidth caps, for all its torrents and peers at once. A rate
is bytes per second with the units of sizes (4MiB, 512k; a trailing /s is allowed); 0
removes the cap.`,
		Example: `  gotfs set /mnt/t --max-download-rate 4MiB
  gotfs set /mnt/t --max-upload-rate 1MiB/s --max-download-rate 0`,
		Args: exactArgs("MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := controlRequest{Op: opSet}
			if cmd.Flags().Changed("max-download-rate") {
				req.MaxDownloadRate = &down
			}
			if cmd.Flags().Changed("max-upload-rate") {
				req.MaxUploadRate = &up
			}
			if req.MaxDownloadRate == nil && req.MaxUploadRate == nil {
				return newUsageError(cmd, "nothing to set: give --max-download-rate or --max-upload-rate")
			}
			root, err := controlSocketRoot(cacheDir)
			if err != nil {
				return err
			}
			rep, err := callMount(cmd.Context(), root, args[0], req, 0)
			if err != nil {
				return err
			}
			if rep.Limits != nil {
				fmt.Fprintf(a.stdout, "download cap %s, upload cap %s\n", formatRate(rep.Limits.MaxDownloadRate), formatRate(rep.Limits.MaxUploadRate))
			}
			return nil
		},
	}
	bindRateFlags(cmd, &down, &up)
	bindControlSocketDir(cmd, &cacheDir)
	return cmd
}

// bindRateFlags adds --max-download-rate and --max-upload-rate.
func bindRateFlags(cmd *cobra.Command, down, up *int64) {
	cmd.Flags().Var(rateValue{down}, "max-download-rate", "cap on the bytes per second received from all peers, e.g. 4MiB (0 = none)")
	cmd.Flags().Var(rateValue{up}, "max-upload-rate", "cap on the bytes per second sent to all peers, e.g. 1MiB (0 = none)")
}

// formatRate prints a cap: "4 MiB/s", or "none" for 0.
func formatRate(bps int64) string {
	if bps <= 0 {
		return "none"
	}
	return formatSize(bps) + "/s"
}

// rateValue is a pflag.Value for a rate: a size per second, "/s" optional.
type rateValue struct{ n *int64 }

func (v rateValue) String() string { return sizeValue(v).String() }

func (v rateValue) Set(s string) error {
	t := strings.TrimSpace(s)
	if l := strings.ToLower(t); strings.HasSuffix(l, "/s") {
		t = t[:len(t)-2]
	}
	return sizeValue(v).Set(t)
}

func (v rateValue) Type() string { return "rate" }
