package main

import (
	"bufio"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
)

// uTP interop over the whole engine. gotfs runs with --transport utp: it opens no TCP socket
// at all, so whatever it exchanges goes over uTP; its -vv log names each peer's transport.

// trUTP turns transmission's uTP on (startTransmissionWith turns it off by default).
var trUTP = map[string]any{"utp-enabled": true}

// wantUTPOnly checks that gotfs logged (at -vv) peers connected over uTP and none over TCP.
func wantUTPOnly(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, "transport=utp") || strings.Contains(out, "transport=tcp") {
		t.Errorf("gotfs logged no uTP peer, or a TCP one; output:\n%s", out)
	}
}

// TestInteropUTPDownloadFromTransmission: gotfs --transport utp downloads from a transmission
// seeder (it dials transmission, which never dials 127.0.0.0/8 peers).
func TestInteropUTPDownloadFromTransmission(t *testing.T) {
	t.Parallel()
	out := interopDownloadFromTransmission(t, 21, "127.0.0.61", "127.0.0.62", trUTP, "--transport", "utp", "-vv")
	wantUTPOnly(t, out)
}

// TestInteropTransmissionDownloadsFromGotfsUTP: transmission downloads from `gotfs seed
// --transport utp`, which finds it through the tracker and dials it over uTP; transmission
// then requests from the peer that dialed it.
func TestInteropTransmissionDownloadsFromGotfsUTP(t *testing.T) {
	t.Parallel()
	seeder := interopTransmissionDownloadsFromGotfs(t, 22, "127.0.0.63", "127.0.0.64", trUTP, "--transport", "utp", "-vv")
	wantUTPOnly(t, seeder.out.String())
}

// utpPeerScript is a libtorrent peer with TCP off (p2p/utp's interop tests use it too).
var utpPeerScript = filepath.Join("..", "..", "p2p", "utp", "testdata", "utp_peer.py")

// readLine reads one line of a helper's output within d.
func readLine(t *testing.T, r *bufio.Reader, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- strings.TrimSpace(s)
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		t.Fatalf("no output from the libtorrent peer after %v", d)
		return ""
	}
}

// TestInteropUTPDownloadFromLibtorrent: `gotfs download --transport utp` from a libtorrent
// seeder whose TCP is off (python3-libtorrent).
func TestInteropUTPDownloadFromLibtorrent(t *testing.T) {
	t.Parallel()
	bin := interopGotfs(t)
	data := t.TempDir()
	src := filepath.Join(data, "Odd Album")
	interopWrite(t, src, oddLayout, 23)
	torrent, _ := interopCreate(t, bin, src, "http://127.0.0.1:1/announce", "32KiB")
	const ltIP = "127.0.0.65"
	r := testenv.StartLibtorrentScript(t, utpPeerScript, "seed", torrent, data, ltIP)
	line := readLine(t, r, 30*time.Second)
	port, ok := strings.CutPrefix(line, "port ")
	if !ok {
		t.Fatalf("libtorrent said %q, want its port", line)
	}
	out := interopGotfsDownload(t, bin, torrent, src, "127.0.0.66", "--transport", "utp", "--encryption", "off", "-vv",
		"--peer", net.JoinHostPort(ltIP, port))
	wantUTPOnly(t, out)
}

// TestInteropLibtorrentDownloadsFromGotfsUTP: a libtorrent leecher with TCP off downloads from
// `gotfs seed --transport utp` (libtorrent dials gotfs over uTP).
func TestInteropLibtorrentDownloadsFromGotfsUTP(t *testing.T) {
	t.Parallel()
	bin := interopGotfs(t)
	data := t.TempDir()
	src := filepath.Join(data, "Odd Album")
	interopWrite(t, src, oddLayout, 24)
	torrent, _ := interopCreate(t, bin, src, "http://127.0.0.1:1/announce", "32KiB")
	const gotfsIP = "127.0.0.67"
	seeder := interopGotfsSeed(t, bin, torrent, src, gotfsIP, "--transport", "utp", "--encryption", "off", "-vv")
	port := seederPort(t, seeder)
	out := t.TempDir()
	r := testenv.StartLibtorrentScript(t, utpPeerScript, "leech", torrent, out, "127.0.0.68", gotfsIP, strconv.Itoa(port))
	if line := readLine(t, r, 40*time.Second); line != "done" {
		t.Fatalf("libtorrent said %q, want done", line)
	}
	interopSame(t, src, filepath.Join(out, filepath.Base(src)))
	wantUTPOnly(t, seeder.out.String())
}

// seederPort returns the port a `gotfs seed` said it listens on.
func seederPort(t *testing.T, p *interopProc) int {
	t.Helper()
	out := p.out.String()
	i := strings.Index(out, "listening on port ")
	if i < 0 {
		t.Fatalf("no port in the seeder's output:\n%s", out)
	}
	f := strings.Fields(out[i+len("listening on port "):])
	port, err := strconv.Atoi(strings.TrimRight(f[0], ",.;)"))
	if err != nil {
		t.Fatalf("port in %q: %v", out[i:], err)
	}
	return port
}
