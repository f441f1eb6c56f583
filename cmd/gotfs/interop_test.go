package main

// Interop tests: the real gotfs binary against real BitTorrent software from Debian (aria2c,
// transmission-daemon) through a real tracker (opentracker), all on 127.0.0.0/8.
//
// Addresses: opentracker takes a peer's address from the packet's source, so every client must
// announce from the address it listens on: aria2c (--interface), transmission
// (bind-address-ipv4) and gotfs (--listen with a host) all bind their tracker sockets too, so
// each gets its own 127.0.0.X.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
)

var (
	interopBinOnce sync.Once
	interopBinPath string
	interopBinErr  error
)

// TestMain removes the binary interopGotfs built.
func TestMain(m *testing.M) {
	code := m.Run()
	if interopBinPath != "" {
		os.RemoveAll(filepath.Dir(interopBinPath))
	}
	os.Exit(code)
}

// interopGotfs builds the gotfs binary once per test run and returns its path.
func interopGotfs(t *testing.T) string {
	t.Helper()
	interopBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gotfs-interop-bin-")
		if err != nil {
			interopBinErr = err
			return
		}
		interopBinPath = filepath.Join(dir, "gotfs")
		out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", interopBinPath, ".").CombinedOutput()
		if err != nil {
			interopBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if interopBinErr != nil {
		t.Fatal(interopBinErr)
	}
	return interopBinPath
}

// interopBuffer is an io.Writer safe for concurrent use that keeps the last 256 KiB.
type interopBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *interopBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 256<<10 {
		keep := append([]byte(nil), b.b.Bytes()[b.b.Len()-128<<10:]...)
		b.b.Reset()
		b.b.WriteString("[...]\n")
		b.b.Write(keep)
	}
	return b.b.Write(p)
}

func (b *interopBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// interopProc is a program the test started; it is killed when the test ends.
type interopProc struct {
	name string
	cmd  *exec.Cmd
	out  *interopBuffer
	done chan struct{}
	err  error
}

// interopStart starts a program with its output captured; on failure of the test the output is
// logged.
func interopStart(t *testing.T, dir, name string, args ...string) *interopProc {
	t.Helper()
	p := &interopProc{name: filepath.Base(name), cmd: exec.Command(name, args...), out: &interopBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, ".cache"), "XDG_CONFIG_HOME="+filepath.Join(dir, ".config"))
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", p.name, strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// wait waits for the program to exit within d and returns its exit error.
func (p *interopProc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s still running after %v; output:\n%s", p.name, d, p.out.String())
		return nil
	}
}

// exited reports whether the program has ended.
func (p *interopProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// interopRun runs a program to completion and returns its standard output.
func interopRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// interopLayout is a file tree: paths relative to the top folder, and sizes.
type interopLayout map[string]int

// oddLayout has a zero-byte file, files that end inside pieces, a nested folder and a last
// piece shorter than the rest (with 32 KiB pieces: 1,889,125 bytes = 57 full pieces + 21,349).
var oddLayout = interopLayout{
	"a.bin":          1_000_003,
	"empty.dat":      0,
	"sub/b.bin":      777_777,
	"sub/deep/c.txt": 12_345,
	"z.bin":          99_000,
}

// interopWrite writes layout under dir with pseudo-random bytes.
func interopWrite(t *testing.T, dir string, layout interopLayout, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}))
	for p, n := range layout {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		for i := n - n%8; i < n; i++ {
			buf[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func interopHash(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// interopSame checks that every file of the source tree (or the single source file) is in
// got with the same size and SHA-256, and that got holds no other regular file than the
// clients' own bookkeeping.
func interopSame(t *testing.T, src, got string) {
	t.Helper()
	interopCompare(t, src, got, false)
}

// interopCompare is interopSame; with missingEmptyOK a zero-byte file may be absent
// (transmission 3.00 never creates empty files).
func interopCompare(t *testing.T, src, got string, missingEmptyOK bool) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		if a, b := interopHash(t, src), interopHash(t, got); a != b {
			t.Fatalf("%s: SHA-256 %s, want %s (of %s)", got, b, a, src)
		}
		return
	}
	n := 0
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(got, rel)
		si, _ := d.Info()
		gi, err := os.Stat(q)
		if err != nil && missingEmptyOK && si.Size() == 0 && os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Errorf("missing %s: %v", rel, err)
			return nil
		}
		if gi.Size() != si.Size() {
			t.Errorf("%s: %d bytes, want %d", rel, gi.Size(), si.Size())
			return nil
		}
		if a, b := interopHash(t, p), interopHash(t, q); a != b {
			t.Errorf("%s: SHA-256 %s, want %s", rel, b, a)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no files under %s", src)
	}
}

// interopCreate makes a torrent of src with `gotfs create` and returns its path and info hash.
func interopCreate(t *testing.T, bin, src, announce, pieceLength string) (string, [20]byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(src)+".torrent")
	interopRun(t, "", bin, "create", src, "-t", announce, "--piece-length", pieceLength, "-o", out, "--progress=false")
	var parsed struct {
		InfoHash string `json:"info_hash"`
	}
	if err := json.Unmarshal([]byte(interopRun(t, "", bin, "parse", "--json", out)), &parsed); err != nil {
		t.Fatalf("parse --json: %v", err)
	}
	var h [20]byte
	if b, err := hex.DecodeString(parsed.InfoHash); err != nil || len(b) != 20 {
		t.Fatalf("parse --json: info hash %q", parsed.InfoHash)
	} else {
		copy(h[:], b)
	}
	return out, h
}

// aria2Args are the options every aria2c here runs with: no DHT, LPD or PEX, IPv4 only, every
// socket bound to ip (so the tracker sees ip), quiet console.
func aria2Args(ip string, port int) []string {
	return []string{
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--disable-ipv6=true", "--interface=" + ip, "--listen-port=" + strconv.Itoa(port),
		"--file-allocation=falloc", "--summary-interval=0", "--console-log-level=notice",
		"--no-conf=true", "--auto-save-interval=0", "--bt-save-metadata=false", "--rpc-save-upload-metadata=false",
		"--bt-tracker-interval=1",
	}
}

// interopGotfsDownload runs `gotfs download` through the torrent's tracker and checks the result.
// extra flags go to gotfs download; it returns the download's output.
func interopGotfsDownload(t *testing.T, bin, torrent, src, ip string, extra ...string) string {
	t.Helper()
	work := t.TempDir()
	out := filepath.Join(work, "out")
	port := testenv.FreePort(t, ip)
	start := time.Now()
	p := interopStart(t, work, bin, append([]string{"download", torrent, "-o", out, "--cache-dir", filepath.Join(work, "cache"),
		"--listen", net.JoinHostPort(ip, strconv.Itoa(port)), "--no-dht", "--json", "-v"}, extra...)...)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("gotfs download: %v\n%s", err, p.out.String())
	}
	t.Logf("gotfs download took %v", time.Since(start).Round(time.Millisecond))
	interopSame(t, src, filepath.Join(out, filepath.Base(src)))
	return p.out.String()
}

// TestInteropDownloadFromAria2 has gotfs download a multi-file torrent with odd sizes (made by
// gotfs create) from an aria2c seeder found through opentracker over HTTP.
func TestInteropDownloadFromAria2(t *testing.T) {
	t.Parallel()
	interopDownloadFromAria2(t, 1, "127.0.0.11", "127.0.0.41", nil)
}

// interopDownloadFromAria2 runs TestInteropDownloadFromAria2 with the given data seed and
// addresses, extra aria2c flags and extra gotfs download flags; it returns gotfs's output.
func interopDownloadFromAria2(t *testing.T, seed uint64, ariaIP, gotfsIP string, ariaExtra []string, gotfsExtra ...string) string {
	aria := testenv.RequireBinary(t, "aria2c")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "Odd Album")
	interopWrite(t, src, oddLayout, seed)
	torrent, hash := interopCreate(t, bin, src, ot.HTTPAnnounceURL(), "32KiB")
	ot.Allow(t, hash)

	// -V checks our piece hashes: aria2c seeds only what it verified itself.
	seeder := interopStart(t, data, aria, append(append(aria2Args(ariaIP, testenv.FreePort(t, ariaIP)), ariaExtra...),
		"-V", "--seed-ratio=0.0", "-d", data, torrent)...)
	interopWaitOutput(t, seeder, "Verification finished successfully", 20*time.Second)
	return interopGotfsDownload(t, bin, torrent, src, gotfsIP, gotfsExtra...)
}

// TestInteropDownloadFromTransmission has gotfs download from a transmission-daemon seeder
// found through opentracker over UDP.
func TestInteropDownloadFromTransmission(t *testing.T) {
	t.Parallel()
	interopDownloadFromTransmission(t, 2, "127.0.0.12", "127.0.0.42", nil)
}

// interopDownloadFromTransmission runs TestInteropDownloadFromTransmission with the given data
// seed and addresses, transmission settings and extra gotfs download flags; it returns gotfs's
// output.
func interopDownloadFromTransmission(t *testing.T, seed uint64, trIP, gotfsIP string, trSettings map[string]any, gotfsExtra ...string) string {
	testenv.RequireBinary(t, "transmission-remote")
	daemon := testenv.RequireBinary(t, "transmission-daemon")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "single.bin")
	interopWrite(t, data, interopLayout{"single.bin": 3<<20 + 54_321}, seed) // last piece short
	torrent, hash := interopCreate(t, bin, src, ot.UDPAnnounceURL(), "256KiB")
	ot.Allow(t, hash)

	tr := startTransmissionWith(t, daemon, trIP, trSettings)
	tr.add(t, torrent, data)
	tr.waitPercent(t, 100, 20*time.Second) // verified: it seeds
	tr.waitAnnounced(t, 20*time.Second)
	return interopGotfsDownload(t, bin, torrent, src, gotfsIP, gotfsExtra...)
}

// TestInteropAria2DownloadsFromGotfs has aria2c download a multi-file torrent with odd sizes
// from `gotfs seed`.
func TestInteropAria2DownloadsFromGotfs(t *testing.T) {
	t.Parallel()
	interopAria2DownloadsFromGotfs(t, 3, "127.0.0.43", "127.0.0.14", nil)
}

// interopAria2DownloadsFromGotfs runs TestInteropAria2DownloadsFromGotfs with the given data
// seed and addresses, extra aria2c flags and extra gotfs seed flags; it returns the seeder.
func interopAria2DownloadsFromGotfs(t *testing.T, seed uint64, gotfsIP, ariaIP string, ariaExtra []string, gotfsExtra ...string) *interopProc {
	aria := testenv.RequireBinary(t, "aria2c")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "Odd Album")
	interopWrite(t, src, oddLayout, seed)
	torrent, hash := interopCreate(t, bin, src, ot.HTTPAnnounceURL(), "32KiB")
	ot.Allow(t, hash)
	seeder := interopGotfsSeed(t, bin, torrent, src, gotfsIP, gotfsExtra...)

	out := t.TempDir()
	start := time.Now()
	leecher := interopStart(t, out, aria, append(append(aria2Args(ariaIP, testenv.FreePort(t, ariaIP)), ariaExtra...),
		"--seed-time=0", "-d", out, torrent)...)
	if err := leecher.wait(t, 60*time.Second); err != nil {
		t.Fatalf("aria2c: %v\n%s", err, leecher.out.String())
	}
	t.Logf("aria2c download took %v", time.Since(start).Round(time.Millisecond))
	interopSame(t, src, filepath.Join(out, filepath.Base(src)))
	return seeder
}

// TestInteropTransmissionDownloadsFromGotfs has transmission-daemon download from `gotfs seed`
// through opentracker over UDP. Transmission never dials a peer on 127.0.0.0/8 (it counts them
// as "martian" addresses) but accepts their connections, so it announces first and gotfs, seeing
// it in the tracker's peer list, dials it.
func TestInteropTransmissionDownloadsFromGotfs(t *testing.T) {
	t.Parallel()
	interopTransmissionDownloadsFromGotfs(t, 4, "127.0.0.15", "127.0.0.44", nil)
}

// interopTransmissionDownloadsFromGotfs runs TestInteropTransmissionDownloadsFromGotfs with the
// given data seed and addresses, transmission settings and extra gotfs seed flags; it returns
// the seeder.
func interopTransmissionDownloadsFromGotfs(t *testing.T, seed uint64, trIP, gotfsIP string, trSettings map[string]any, gotfsExtra ...string) *interopProc {
	testenv.RequireBinary(t, "transmission-remote")
	daemon := testenv.RequireBinary(t, "transmission-daemon")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "Odd Album")
	interopWrite(t, src, oddLayout, seed)
	torrent, hash := interopCreate(t, bin, src, ot.UDPAnnounceURL(), "32KiB")
	ot.Allow(t, hash)

	out := t.TempDir()
	tr := startTransmissionWith(t, daemon, trIP, trSettings)
	tr.add(t, torrent, out)
	tr.waitAnnounced(t, 20*time.Second)
	start := time.Now()
	seeder := interopGotfsSeed(t, bin, torrent, src, gotfsIP, gotfsExtra...)
	tr.waitPercent(t, 100, 60*time.Second)
	t.Logf("transmission download took %v", time.Since(start).Round(time.Millisecond))
	// 100% means verified; "Date finished" is set once the torrent is complete and flushed.
	tr.waitInfo(t, "-i", 10*time.Second, func(out string) bool { return strings.Contains(out, "Date finished:") })
	interopCompare(t, src, filepath.Join(out, filepath.Base(src)), true)
	return seeder
}

// interopGotfsSeed starts `gotfs seed` (with the extra flags) on ip and waits until it listens.
func interopGotfsSeed(t *testing.T, bin, torrent, src, ip string, extra ...string) *interopProc {
	t.Helper()
	work := t.TempDir()
	port := testenv.FreePort(t, ip)
	p := interopStart(t, work, bin, append([]string{"seed", torrent, src, "--cache-dir", filepath.Join(work, "cache"),
		"--listen", net.JoinHostPort(ip, strconv.Itoa(port)), "--no-dht", "-v"}, extra...)...)
	interopWaitOutput(t, p, "listening on port", 20*time.Second)
	return p
}

// interopWaitOutput waits until p has printed s.
func interopWaitOutput(t *testing.T, p *interopProc, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), s) {
		if p.exited() {
			t.Fatalf("%s exited (%v) before printing %q; output:\n%s", p.name, p.err, s, p.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %v; output:\n%s", p.name, s, d, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// transmission is a transmission-daemon with its own config folder, RPC on 127.0.0.1 and peers
// on its own address.
type transmission struct {
	proc *interopProc
	rpc  string // host:port for transmission-remote
}

func startTransmission(t *testing.T, daemon, ip string) *transmission {
	t.Helper()
	return startTransmissionWith(t, daemon, ip, nil)
}

// startTransmissionWith is startTransmission with settings.json entries overridden by extra.
func startTransmissionWith(t *testing.T, daemon, ip string, extra map[string]any) *transmission {
	t.Helper()
	conf := t.TempDir()
	rpcPort := testenv.FreePort(t, "127.0.0.1")
	peerPort := testenv.FreePort(t, ip)
	settings := map[string]any{
		"dht-enabled": false, "lpd-enabled": false, "utp-enabled": false, "pex-enabled": false,
		"port-forwarding-enabled": false, "encryption": 1, "start-added-torrents": true,
		"rpc-authentication-required": false, "rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
		"rpc-bind-address": "127.0.0.1", "bind-address-ipv4": ip, "bind-address-ipv6": "::1",
		"download-dir": conf, "incomplete-dir-enabled": false, "message-level": 2,
		"ratio-limit-enabled": false, "idle-seeding-limit-enabled": false, "peer-port-random-on-start": false,
	}
	maps.Copy(settings, extra)
	b, _ := json.Marshal(settings)
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	tr := &transmission{rpc: "127.0.0.1:" + strconv.Itoa(rpcPort)}
	tr.proc = interopStart(t, conf, daemon, "-g", conf, "--foreground", "-p", strconv.Itoa(rpcPort),
		"-P", strconv.Itoa(peerPort), "--bind-address-ipv4", ip, "--no-dht", "--no-portmap", "--no-auth",
		"-r", "127.0.0.1")
	remote := testenv.RequireBinary(t, "transmission-remote")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := exec.Command(remote, tr.rpc, "-l").Run(); err == nil {
			return tr
		}
		if tr.proc.exited() || time.Now().After(deadline) {
			t.Fatalf("transmission-daemon RPC on %s did not answer; output:\n%s", tr.rpc, tr.proc.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// add adds the torrent with dir as its download folder (where data already there is verified).
func (tr *transmission) add(t *testing.T, torrent, dir string) {
	t.Helper()
	out := interopRun(t, "", "transmission-remote", tr.rpc, "-a", torrent, "-w", dir)
	if !strings.Contains(out, "success") {
		t.Fatalf("transmission-remote -a: %s", out)
	}
}

// waitAnnounced waits until transmission has got a peer list from the tracker (so the tracker
// knows it).
func (tr *transmission) waitAnnounced(t *testing.T, d time.Duration) {
	t.Helper()
	tr.waitInfo(t, "-it", d, func(out string) bool { return strings.Contains(out, "Got a list of") })
}

// waitPercent polls the torrent's "Percent Done" until it reaches pct.
func (tr *transmission) waitPercent(t *testing.T, pct float64, d time.Duration) {
	t.Helper()
	tr.waitInfo(t, "-i", d, func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Percent Done:"); ok {
				f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64)
				return err == nil && f >= pct
			}
		}
		return false
	})
}

// waitInfo polls `transmission-remote -t 1 FLAG` until ok accepts its output.
func (tr *transmission) waitInfo(t *testing.T, flag string, d time.Duration, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		out, err := exec.Command("transmission-remote", tr.rpc, "-t", "1", flag).Output()
		if err == nil {
			last = string(out)
			if ok(last) {
				return
			}
		}
		if tr.proc.exited() {
			t.Fatalf("transmission-daemon exited (%v)", tr.proc.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmission: condition not met within %v; last status:\n%s", d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
