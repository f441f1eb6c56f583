package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenDocsCmd is the hidden command behind `make man` and `make install`: it writes a man
// page for every command and the shell completion scripts, both generated from the command
// tree, so they never drift from the flags.
func newGenDocsCmd(a *app) *cobra.Command {
	var manDir, complDir string
	cmd := &cobra.Command{
		Use:    "gen-docs --man DIR [--completions DIR]",
		Short:  "Write man pages and shell completions generated from the commands",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if manDir == "" && complDir == "" {
				return newUsageError(cmd, "nothing to do: give --man DIR, --completions DIR or both")
			}
			root := cmd.Root()
			if manDir != "" {
				if err := os.MkdirAll(manDir, 0o755); err != nil {
					return fmt.Errorf("man pages: %w", err)
				}
				header := &doc.GenManHeader{Title: "GOTFS", Section: "1", Source: "gotfs " + buildVersion().Module, Manual: "gotfs manual"}
				root.DisableAutoGenTag = true
				if err := doc.GenManTree(root, header, manDir); err != nil {
					return fmt.Errorf("man pages: %w", err)
				}
				fmt.Fprintf(a.stdout, "man pages written to %s\n", manDir)
			}
			if complDir != "" {
				if err := writeCompletions(root, complDir); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "completions written to %s\n", complDir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "folder for the man pages (section 1)")
	cmd.Flags().StringVar(&complDir, "completions", "", "folder for the completion scripts, laid out as PREFIX/share expects (bash-completion/completions, zsh/site-functions, fish/vendor_completions.d)")
	return cmd
}

// writeCompletions writes the bash, zsh and fish completion scripts under dir, in the folders
// where those shells look under PREFIX/share.
func writeCompletions(root *cobra.Command, dir string) error {
	scripts := []struct {
		path string
		gen  func(string) error
	}{
		{filepath.Join(dir, "bash-completion", "completions", "gotfs"), func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
		{filepath.Join(dir, "zsh", "site-functions", "_gotfs"), root.GenZshCompletionFile},
		{filepath.Join(dir, "fish", "vendor_completions.d", "gotfs.fish"), func(p string) error { return root.GenFishCompletionFile(p, true) }},
	}
	for _, s := range scripts {
		if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
			return fmt.Errorf("completions: %w", err)
		}
		if err := s.gen(s.path); err != nil {
			return fmt.Errorf("completions %s: %w", s.path, err)
		}
	}
	return nil
}
