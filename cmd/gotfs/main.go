// Command gotfs is a BitTorrent client whose headline feature is a FUSE filesystem: mount a
// torrent and read its files at once while the pieces under each read are fetched first.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// app carries what every command shares: output streams and the logger.
type app struct {
	stdout, stderr io.Writer
	verbose        int
	log            *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(&app{stdout: os.Stdout, stderr: os.Stderr}).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotfs: "+oneLine(err.Error()))
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "gotfs",
		Short:         "A BitTorrent client that mounts torrents as a filesystem",
		Long:          "gotfs downloads, seeds and mounts torrents. A mounted torrent's files appear at once;\nevery read fetches the pieces under it first.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			switch {
			case a.verbose == 1:
				level = slog.LevelInfo
			case a.verbose >= 2:
				level = slog.LevelDebug
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().CountVarP(&a.verbose, "verbose", "v", "log more (-v info, -vv debug)")
	root.AddCommand(
		newVersionCmd(a),
		newParseCmd(a),
		newCreateCmd(a),
		newPeersCmd(a),
		newDownloadCmd(a),
		newDownloadPieceCmd(a),
		newSeedCmd(a),
		newCacheCmd(a),
		newMountCmd(a),
		newUnmountCmd(a),
		newStatusCmd(a),
	)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%s: %w (see %s --help)", cmd.CommandPath(), err, cmd.CommandPath())
	})
	return root
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the gotfs version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(a.stdout, "gotfs %s\n", version)
			return err
		},
	}
}
