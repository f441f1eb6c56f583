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
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes: 1 for a failed command, 2 for a usage error (as cobra users and getopt expect),
// 128+N after signal N (130 after Ctrl-C).
const (
	exitFailure = 1
	exitUsage   = 2
)

// app carries what every command shares: input and output streams and the logger (tests run
// the command tree in process with their own streams).
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	verbose        int
	log            *slog.Logger

	// args is the command line run was given (a --daemon mount runs it again).
	args []string
	// onReady, set in the background child of `mount --daemon`, tells the parent that the
	// mount is ready.
	onReady func(msg string)
}

// ready reports that a mount is up: to the parent of a --daemon child, once.
func (a *app) ready(msg string) {
	if a.onReady != nil {
		a.onReady(msg)
		a.onReady = nil
	}
}

// logLevel is the level -v asks for: warnings by default, -v info, -vv debug.
func (a *app) logLevel() slog.Level {
	switch {
	case a.verbose == 1:
		return slog.LevelInfo
	case a.verbose >= 2:
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(run(a, os.Args[1:]))
}

// run executes one command line and returns the process's exit code. SIGINT and SIGTERM
// cancel the command's context; a second signal kills the process the default way.
func run(a *app, args []string) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		select {
		case s := <-sigs:
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			cancel(signalError{s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	root := newRootCmd(a)
	args, err := helperArgs(root, args)
	if err != nil {
		return report(a.stderr, err)
	}
	a.args = args
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	var sig signalError
	if errors.As(context.Cause(ctx), &sig) {
		return reportSignal(a.stderr, sig, err)
	}
	return report(a.stderr, err)
}

// signalError is the cause of a context cancelled by a signal.
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return "interrupted by " + e.sig.String() }

// reportSignal decides the exit of a command that a signal asked to stop. Ctrl-C always exits
// 130 (the shell's convention); SIGTERM is how a service manager stops a mount or a seed, so a
// command that then finished cleanly exits 0, and one cut short exits 143.
func reportSignal(stderr io.Writer, sig signalError, err error) int {
	code := 128 + int(sig.sig)
	if err == nil {
		if sig.sig == syscall.SIGTERM {
			return 0
		}
		return code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, errInterrupted) {
		fmt.Fprintln(stderr, "gotfs: interrupted")
	} else {
		fmt.Fprintln(stderr, "gotfs: "+oneLine(err.Error()))
	}
	return code
}

// report prints a command's error, if any, and returns the exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ce childExit
	if errors.As(err, &ce) {
		return ce.code // the --daemon child's error was printed already
	}
	var ue usageError
	if isUsage := errors.As(err, &ue); isUsage || isCobraUsageError(err) {
		// Usage errors keep their layout (cobra's "Did you mean this?" list, the usage line).
		msg := strings.TrimRight(err.Error(), "\n")
		if !isUsage {
			msg += "\nRun 'gotfs --help' for usage."
		}
		fmt.Fprintln(stderr, "gotfs: "+msg)
		return exitUsage
	}
	fmt.Fprintln(stderr, "gotfs: "+oneLine(err.Error()))
	return exitFailure
}

// isCobraUsageError recognises the errors cobra itself returns for a command line it cannot
// place (they are plain strings).
func isCobraUsageError(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}

// usageError is a command line that does not fit the command: it exits 2 and may span lines
// (the message, then the usage line).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// newUsageError says what is wrong with cmd's command line and shows its usage line.
func newUsageError(cmd *cobra.Command, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if cmd.HasParent() {
		msg = cmd.Name() + ": " + msg
	}
	return usageError{fmt.Sprintf("%s\nUsage: %s\nRun '%s --help' for more.", msg, cmd.UseLine(), cmd.CommandPath())}
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "gotfs",
		Short:         "A BitTorrent client that mounts torrents as a filesystem",
		Long:          "gotfs downloads, seeds and mounts torrents. A mounted torrent's files appear at once;\nevery read fetches the pieces under it first.",
		Version:       buildVersion().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: a.logLevel()}))
		},
	}
	root.SetVersionTemplate("gotfs {{.Version}}\n")
	root.SetIn(a.stdin)
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
		newServeCmd(a),
		newUnmountCmd(a),
		newStatusCmd(a),
		newAddCmd(a),
		newRemoveCmd(a),
		newSetCmd(a),
		newGenDocsCmd(a),
	)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return newUsageError(cmd, "%v", err)
	})
	root.SetHelpCommand(newHelpCmd(root))
	root.InitDefaultCompletionCmd()
	requireSubcommands(root)
	return root
}

// requireSubcommands makes every command that only groups others (cache, completion) refuse
// an unknown subcommand with a usage error; cobra would print the help and exit 0.
func requireSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		requireSubcommands(c)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() || !cmd.HasParent() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return unknownSubcommand(cmd, args[0])
	}
}

// unknownSubcommand is the usage error for `PARENT NAME` when PARENT has no command NAME, in
// cobra's own layout, with its suggestions.
func unknownSubcommand(parent *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, parent.CommandPath())
	if parent.SuggestionsMinimumDistance <= 0 {
		parent.SuggestionsMinimumDistance = 2 // cobra's default, which it sets for the root only
	}
	if s := parent.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	var names []string
	for _, c := range parent.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usageError{fmt.Sprintf("%s\nAvailable: %s\nRun '%s --help' for usage.", msg, strings.Join(names, ", "), parent.CommandPath())}
}

// newHelpCmd is `gotfs help [COMMAND...]`; unlike cobra's, an unknown topic is a usage error.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() && strings.HasPrefix(c.Name(), toComplete) {
					out = append(out, c.Name())
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == nil {
				return usageError{fmt.Sprintf("help: no such command %q\nRun 'gotfs --help' for the list.", strings.Join(args, " "))}
			}
			if len(rest) > 0 && cmd.HasSubCommands() {
				// Find stops where it can go no deeper and hands back what it could not place.
				return unknownSubcommand(cmd, rest[0])
			}
			return cmd.Help()
		},
	}
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the gotfs version (module version and VCS revision of this build)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(a.stdout, "gotfs %s\n", buildVersion())
			return err
		},
	}
}
