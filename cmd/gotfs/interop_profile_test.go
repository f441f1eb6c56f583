package main

import (
	"os"
	"strings"
	"testing"
)

// BenchmarkProfileCommand runs a gotfs command in this process so that `go test -cpuprofile` /
// `-memprofile` profile the real command (benchmarks never run in `make test`). The command's
// arguments come from GOTFS_PROFILE_ARGS (space-separated), e.g.
//
//	GOTFS_PROFILE_ARGS="download bench.torrent -o /tmp/out --no-dht --listen 127.0.0.1:0" \
//	  go test -run '^$' -bench BenchmarkProfileCommand -benchtime 1x -cpuprofile cpu.out ./cmd/gotfs
func BenchmarkProfileCommand(b *testing.B) {
	args := os.Getenv("GOTFS_PROFILE_ARGS")
	if args == "" {
		b.Skip("skipping: reason: set GOTFS_PROFILE_ARGS to the command to profile")
	}
	for range b.N {
		cmd := newRootCmd(&app{stdout: os.Stdout, stderr: os.Stderr})
		cmd.SetArgs(strings.Fields(args))
		if err := cmd.ExecuteContext(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
