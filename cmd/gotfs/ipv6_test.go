package main

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
)

// TestInteropIPv6PeerFromAria2 has gotfs download over IPv6 alone from an aria2c seeder given
// as --peer [::1]:port (no tracker answers, no DHT): both ends on ::1.
func TestInteropIPv6PeerFromAria2(t *testing.T) {
	t.Parallel()
	aria := testenv.RequireBinary(t, "aria2c")
	bin := interopGotfs(t)
	data := t.TempDir()
	src := filepath.Join(data, "Odd Album")
	interopWrite(t, src, oddLayout, 6)
	// A tracker that does not exist: the peer must come from --peer.
	torrent, _ := interopCreate(t, bin, src, "http://[::1]:1/announce", "32KiB")
	port := testenv.FreePort(t, "::1")
	seeder := interopStart(t, data, aria, "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
		"--enable-peer-exchange=false", "--listen-port="+strconv.Itoa(port), "--file-allocation=falloc",
		"--summary-interval=0", "--console-log-level=notice", "--no-conf=true", "--auto-save-interval=0",
		"--bt-save-metadata=false", "--rpc-save-upload-metadata=false",
		"-V", "--seed-ratio=0.0", "-d", data, torrent)
	interopWaitOutput(t, seeder, "Verification finished successfully", 20*time.Second)

	work := t.TempDir()
	out := filepath.Join(work, "out")
	p := interopStart(t, work, bin, "download", torrent, "-o", out, "--cache-dir", filepath.Join(work, "cache"),
		"--listen", net.JoinHostPort("::1", strconv.Itoa(testenv.FreePort(t, "::1"))), "--no-dht",
		"--peer", net.JoinHostPort("::1", strconv.Itoa(port)), "--json", "-v")
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("gotfs download: %v\n%s", err, p.out.String())
	}
	interopSame(t, src, filepath.Join(out, filepath.Base(src)))
}
