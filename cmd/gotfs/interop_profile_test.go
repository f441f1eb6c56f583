package main

import (
	"os"
	"strings"
	"testing"
)

// TestInteropProfileDownload is a benchmark helper, not a test: it runs `gotfs download` in this
// process so that `go test -cpuprofile` / `-memprofile` profile the real command. It runs only
// when GOTFS_PROFILE_ARGS holds the download's arguments (space-separated), e.g.
//
//	GOTFS_PROFILE_ARGS="download bench.torrent -o /tmp/out --no-dht --listen 127.0.0.1:0" \
//	  go test -run TestInteropProfileDownload -cpuprofile cpu.out ./cmd/gotfs
func TestInteropProfileDownload(t *testing.T) {
	args := os.Getenv("GOTFS_PROFILE_ARGS")
	if args == "" {
		t.Skip("skipping: reason: a profiling helper; set GOTFS_PROFILE_ARGS to run it")
	}
	cmd := newRootCmd(&app{stdout: os.Stdout, stderr: os.Stderr})
	cmd.SetArgs(strings.Fields(args))
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
}
