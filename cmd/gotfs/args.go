package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// Argument validators that name what is missing or extra and show the usage line, instead of
// cobra's "accepts 2 arg(s), received 1".

// noArgs refuses any argument.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return newUsageError(cmd, "unexpected argument %q", args[0])
	}
	return nil
}

// exactArgs wants exactly one argument per name, e.g. exactArgs("TORRENT", "MOUNTPOINT").
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			missing := names[len(args):]
			what := "missing " + strings.Join(missing, " and ")
			return newUsageError(cmd, "%s", what)
		}
		if len(args) > len(names) {
			return newUsageError(cmd, "unexpected argument %q (wants %s)", args[len(names)], strings.Join(names, " "))
		}
		return nil
	}
}

// minArgs wants at least one argument, named name.
func minArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return newUsageError(cmd, "missing %s", name)
		}
		return nil
	}
}
