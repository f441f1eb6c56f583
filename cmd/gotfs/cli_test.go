package main

// Tests of the command line as a new user meets it: exit codes, error wording, flags, sizes,
// the progress bar, version, unmount's refusal of other filesystems, man pages.

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// runCLI runs one command line in process, as main does, and returns its exit code and what it
// printed.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}
	code = run(a, args)
	return code, out.String(), errOut.String()
}

// writeTestTorrent makes a small torrent of one file and returns the .torrent's path.
func writeTestTorrent(t *testing.T, opts torrentfile.CreateOptions) string {
	t.Helper()
	src := t.TempDir()
	writeRandomFiles(t, src, map[string]int{"f.bin": 100_000}, 9)
	_, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "f.bin"), opts)
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), "f.torrent")
	if err := os.WriteFile(tf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return tf
}

// oneErrorLine checks that stderr is exactly one line and returns it.
func oneErrorLine(t *testing.T, stderr string) string {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "gotfs: ") {
		t.Fatalf("stderr %q: want one line starting with \"gotfs: \"", stderr)
	}
	return strings.TrimSuffix(stderr, "\n")
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"4096", 4096, ""},
		{"16k", 16 << 10, ""},
		{"16kb", 16 << 10, ""},
		{"16KB", 16 << 10, ""},
		{"16KiB", 16 << 10, ""},
		{"16 KiB", 16 << 10, ""},
		{"1m", 1 << 20, ""},
		{"1MB", 1 << 20, ""},
		{"1MiB", 1 << 20, ""},
		{"1g", 1 << 30, ""},
		{"1GB", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"1.5GiB", 3 << 29, ""},
		{"2t", 2 << 40, ""},
		{"1TiB", 1 << 40, ""},
		{"1PiB", 1 << 50, ""},
		{"100b", 100, ""},
		{"100B", 100, ""},
		{" 8MiB ", 8 << 20, ""},
		{"0.5k", 512, ""},
		{"8191PiB", 8191 << 50, ""},
		{"8192PiB", 0, "too large"},
		{"9223372036854775807", 9223372036854775807, ""},
		{"9223372036854775808", 0, "too large"},
		{"99999999999999999999999", 0, "too large"},
		{"1" + strings.Repeat("0", 100), 0, "too large"},
		{"NaN", 0, "invalid size"},
		{"nan", 0, "invalid size"},
		{"Inf", 0, "invalid size"},
		{"+Inf", 0, "invalid size"},
		{"-Inf", 0, "invalid size"},
		{"infinity", 0, "invalid size"},
		{"-1", 0, "invalid size"},
		{"-16KiB", 0, "invalid size"},
		{"+16", 0, "invalid size"},
		{"1e6", 0, "invalid size"},
		{"0x10", 0, "invalid size"},
		{"0x", 0, "unknown unit"},
		{"1_000", 0, "invalid size"},
		{"", 0, "invalid size"},
		{"KiB", 0, "invalid size"},
		{"1.3", 0, "not a whole number"},
		{"1.", 0, "invalid size"},
		{".5k", 0, "invalid size"},
		{"16 xb", 0, "unknown unit"},
		{"16 k b", 0, "invalid size"},
	} {
		got, err := parseSize(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseSize(%q) = %d, %v; want an error with %q", tt.in, got, err, tt.err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB",
		16 << 10: "16 KiB", 1 << 30: "1 GiB", 3 << 29: "1.5 GiB", -2048: "-2 KiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestSizeFlags runs every size flag through the command line: one parser, one error style.
func TestSizeFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "x", "--piece-length", "NaN"}, `invalid size "NaN"`},
		{[]string{"create", "x", "--piece-length", "-16k"}, `invalid size "-16k"`},
		{[]string{"mount", "x", "y", "--readahead", "Inf"}, `invalid size "Inf"`},
		{[]string{"mount", "x", "y", "--cache-size", "99999999PiB"}, "too large"},
	} {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "-9223372036854775808") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 with %q", tt.args, code, stderr, tt.want)
		}
	}
}

func TestCheckPieceLength(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, ""}, {16 << 10, ""}, {1 << 20, ""}, {512 << 20, ""},
		{8 << 10, "too small, the least is 16 KiB"},
		{1 << 30, "1 GiB: too large, the most is 512 MiB"},
		{100 << 10, "not a power of two (64 KiB or 128 KiB would do)"},
	} {
		err := checkPieceLength(tt.n)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("checkPieceLength(%d) = %v, want %q", tt.n, err, tt.want)
		}
	}
	src := t.TempDir()
	writeRandomFiles(t, src, map[string]int{"f.bin": 1000}, 1)
	code, _, stderr := runCLI(t, "", "create", filepath.Join(src, "f.bin"), "-o", filepath.Join(src, "x.torrent"), "--piece-length", "1GiB")
	if code != exitFailure || !strings.Contains(stderr, "too large") || strings.Contains(stderr, "power of two") {
		t.Errorf("create --piece-length 1GiB: exit %d, %q", code, stderr)
	}
}

func TestProgressBar(t *testing.T) {
	if got := eta(100<<20, 10<<20); got != "10s" {
		t.Errorf("eta(100 MiB at 10 MiB/s) = %q, want 10s", got)
	}
	if got := eta(3<<30, 1<<20); got != "51m12s" {
		t.Errorf("eta(3 GiB at 1 MiB/s) = %q, want 51m12s", got)
	}
	if got := eta(100, 0); got != "--" {
		t.Errorf("eta at rate 0 = %q", got)
	}

	var out bytes.Buffer
	now := time.Unix(1000, 0)
	p := &progress{w: &out, label: "downloading", tty: true, width: func() int { return 60 }, now: func() time.Time { return now }}
	p.update(0, 100<<20, "peers 3")
	now = now.Add(time.Second)
	p.update(10<<20, 100<<20, "peers 3") // 10 MiB/s: 90 MiB left is 9 s
	frames := strings.Split(out.String(), "\r\033[K")
	last := frames[len(frames)-1]
	if !strings.Contains(last, "ETA 9s") || !strings.Contains(last, "10 MiB/s") {
		t.Errorf("bar %q: want ETA 9s at 10 MiB/s", last)
	}
	for _, f := range frames {
		if n := len([]rune(f)); n >= 60 {
			t.Errorf("bar %q is %d columns on a 60-column terminal", f, n)
		}
	}
	for _, width := range []int{120, 80, 40, 20, 5, 1} {
		line := barLine("downloading  10.0% 10 MiB/100 MiB 10 MiB/s ETA 9s peers 3", 10, 100, width)
		if n := len([]rune(line)); n >= max(width, 2) {
			t.Errorf("barLine at width %d is %d columns: %q", width, n, line)
		}
		if width >= 80 && !strings.HasPrefix(line, "[=") {
			t.Errorf("barLine at width %d has no bar: %q", width, line)
		}
	}
	if line := barLine("x", 50, 100, 200); !strings.HasPrefix(line, "[============            ] x") {
		t.Errorf("half bar: %q", line)
	}
	// Plain output (not a terminal): whole lines, no escape codes.
	out.Reset()
	p = &progress{w: &out, label: "checking", width: func() int { return 0 }, now: time.Now, counts: true}
	p.update(5, 5, "pieces")
	if got := out.String(); got != "checking 100.0% 5/5 pieces\n" {
		t.Errorf("plain progress %q", got)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "--version")
	code2, out2, _ := runCLI(t, "", "version")
	if code != 0 || code2 != 0 || out != out2 || !strings.HasPrefix(out, "gotfs ") {
		t.Fatalf("--version %d %q, version %d %q", code, out, code2, out2)
	}
	// A binary built from a checkout names its revision (not a fixed string).
	bin := interopGotfs(t)
	b, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("CI runs in a git clone: %v", err)
		}
		t.Skipf("skipping the revision check: reason: not a git checkout: %v", err)
	}
	if want := strings.TrimSpace(string(rev)); !strings.Contains(string(b), "revision "+want) {
		t.Errorf("gotfs version = %q, want revision %s", b, want)
	}
	if !regexp.MustCompile(`^gotfs v\S+ \(`).Match(b) {
		t.Errorf("gotfs version = %q, want a module version (vX...)", b)
	}
}

// TestUsageErrors: flag errors without a doubled prefix, unknown subcommands and help topics,
// missing arguments named, all exit 2.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--frob"}, []string{"gotfs: unknown flag: --frob\n"}},
		{[]string{"create", "--frob", "x"}, []string{"gotfs: create: unknown flag: --frob\n", "Usage: gotfs create PATH [flags]"}},
		{[]string{"cache", "frob"}, []string{`gotfs: unknown command "frob" for "gotfs cache"`, "ls, rm, verify"}},
		{[]string{"cache", "lss"}, []string{"Did you mean this?\n\tls\n"}},
		{[]string{"completion", "tcsh"}, []string{`unknown command "tcsh" for "gotfs completion"`, "bash"}},
		{[]string{"help", "nothere"}, []string{`gotfs: help: no such command "nothere"`}},
		{[]string{"help", "cache", "frob"}, []string{`unknown command "frob" for "gotfs cache"`}},
		{[]string{"mount", "album.torrent"}, []string{"gotfs: mount: missing MOUNTPOINT\nUsage: gotfs mount TORRENT|DIR|MAGNET MOUNTPOINT [flags]\n"}},
		{[]string{"mount"}, []string{"gotfs: mount: missing TORRENT and MOUNTPOINT\n"}},
		{[]string{"parse", "a", "b"}, []string{`gotfs: parse: unexpected argument "b"`}},
		{[]string{"version", "x"}, []string{`gotfs: version: unexpected argument "x"`}},
		{[]string{"download-piece", "x.torrent", "first"}, []string{`piece index "first"`}},
		{[]string{"download", "x.torrent", "--encryption", "maybe"}, []string{`invalid argument "maybe" for "--encryption" flag: encryption "maybe": want prefer, require or off`}},
		{[]string{"download-piece", "x.torrent", "0", "--encryption", "RC4"}, []string{`encryption "RC4": want prefer, require or off`}},
		{[]string{"seed", "x.torrent", "--encryption", ""}, []string{`encryption "": want`}},
		{[]string{"mount", "x.torrent", "/mnt", "--encryption", "on"}, []string{`encryption "on": want`}},
		{[]string{"parse", "x.torrent", "--encryption", "1"}, []string{`encryption "1": want`}},
		{[]string{"pars", "x"}, []string{"gotfs: unknown command \"pars\" for \"gotfs\"\n\nDid you mean this?\n\tparse\n", "Run 'gotfs --help' for usage."}},
	} {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code != exitUsage || strings.Contains(stderr, "gotfs: gotfs:") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2", tt.args, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%q: stderr %q lacks %q", tt.args, stderr, w)
			}
		}
	}
	// What exists still works, and exits 0.
	for _, args := range [][]string{{"help"}, {"help", "cache"}, {"help", "cache", "rm"}, {"cache"}, {"completion", "bash"}, {"--help"}} {
		if code, out, stderr := runCLI(t, "", args...); code != 0 || out == "" {
			t.Errorf("%q: exit %d, stdout %d bytes, stderr %q", args, code, len(out), stderr)
		}
	}
}

// TestErrorWording: a missing torrent and a garbage one read the same on every command,
// one line, "gotfs: <what>: <why>".
func TestErrorWording(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothere.torrent")
	garbage := filepath.Join(dir, "garbage.torrent")
	os.WriteFile(garbage, []byte("this is not bencode"), 0o644)
	common := []string{"--cache-dir", t.TempDir(), "--no-dht", "--listen", "127.0.0.1:0"}
	for _, args := range [][]string{
		{"parse", "%s"},
		{"peers", "%s", "--no-dht"},
		append([]string{"download", "%s", "-o", t.TempDir()}, common...),
		append([]string{"download-piece", "%s", "0"}, common...),
		append([]string{"seed", "%s", dir}, common...),
	} {
		for file, want := range map[string]string{
			missing: "gotfs: " + missing + ": no such file or directory",
			garbage: "gotfs: " + garbage + ": invalid bencoding: unexpected byte 't' where a value should start at offset 0",
		} {
			a := append([]string(nil), args...)
			a[1] = file
			code, _, stderr := runCLI(t, "", a...)
			if code != exitFailure || oneErrorLine(t, stderr) != want {
				t.Errorf("%s %s: exit %d, stderr %q; want %q", a[0], filepath.Base(file), code, stderr, want)
			}
		}
	}
	// A mount point is checked the same way.
	code, _, stderr := runCLI(t, "", append([]string{"mount", missing, t.TempDir()}, common...)...)
	if want := "gotfs: " + missing + ": no such file or directory"; code != exitFailure || oneErrorLine(t, stderr) != want {
		t.Errorf("mount: exit %d, %q", code, stderr)
	}
}

// TestArgumentsCheckedBeforeSockets: download and download-piece fail on a missing torrent
// before they open a socket (the listen address is taken: binding it first would fail with
// "address already in use").
func TestArgumentsCheckedBeforeSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udp, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	missing := filepath.Join(t.TempDir(), "missing.torrent")
	tf := writeTestTorrent(t, torrentfile.CreateOptions{})
	for _, args := range [][]string{
		{"download", missing, "-o", t.TempDir()},
		{"download-piece", missing, "0"},
		{"download-piece", tf, "99"},
		{"download", tf, "--include", "nomatch*", "-o", t.TempDir()},
		{"download", tf, "--peer", "not an address", "-o", t.TempDir()},
	} {
		args = append(args, "--listen", ln.Addr().String(), "--dht-listen", ln.Addr().String(), "--cache-dir", t.TempDir())
		code, _, stderr := runCLI(t, "", args...)
		if code == 0 || strings.Contains(stderr, "in use") || strings.Contains(stderr, "listen") {
			t.Errorf("%q: exit %d, %q; want the argument's error, not the socket's", args[:3], code, stderr)
		}
	}
}

// TestSignalExits: Ctrl-C makes every command exit 130 with "interrupted", not with the
// error of whatever it was doing.
func TestSignalExits(t *testing.T) {
	bin := interopGotfs(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(64 << 30) // sparse: hashing it takes far longer than the test waits
	f.Close()
	// A UDP tracker that never answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tf := writeTestTorrent(t, torrentfile.CreateOptions{Trackers: [][]string{{"udp://" + silent.LocalAddr().String() + "/announce"}}})
	for _, args := range [][]string{
		{"create", big, "-o", filepath.Join(dir, "big.torrent")},
		{"peers", tf, "--timeout", "60s"},
		{"download", tf, "-o", filepath.Join(dir, "out"), "--no-dht", "--listen", "127.0.0.1:0", "--cache-dir", filepath.Join(dir, "cache")},
	} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			cmd := exec.Command(bin, args...)
			var stderr testenv.LockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(700 * time.Millisecond) // let it get going
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if want := 128 + int(sig); code != want || !strings.Contains(stderr.String(), "gotfs: interrupted\n") {
				t.Errorf("%s after %v: exit %d (%v), stderr %q; want %d and \"gotfs: interrupted\"", args[0], sig, code, err, stderr.String(), want)
			}
		}
	}
}

func TestCacheRmUnknown(t *testing.T) {
	cacheDir := t.TempDir()
	code, _, stderr := runCLI(t, "", "cache", "rm", "--cache-dir", cacheDir, "0123456789abcdef0123456789abcdef01234567")
	if line := oneErrorLine(t, stderr); code != exitFailure || !strings.Contains(line, "0123456789abcdef0123456789abcdef01234567: not in the cache") || strings.Contains(line, "lstat") {
		t.Errorf("cache rm of an unknown hash: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "cache", "rm", "--cache-dir", cacheDir, "xyz")
	if code != exitFailure || !strings.Contains(stderr, `"xyz" is not an info hash`) {
		t.Errorf("cache rm xyz: exit %d, %q", code, stderr)
	}
}

// TestPeersNoDHT: --no-dht is accepted by peers like by every other command that finds peers.
func TestPeersNoDHT(t *testing.T) {
	tf := writeTestTorrent(t, torrentfile.CreateOptions{})
	code, _, stderr := runCLI(t, "", "peers", "--no-dht", tf)
	if code != exitFailure || !strings.Contains(stderr, "has no trackers") {
		t.Errorf("peers --no-dht: exit %d, %q; want the torrent's own error", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "peers", "--dht", "--no-dht", tf)
	if code != exitFailure || !strings.Contains(stderr, "has no trackers") {
		t.Errorf("peers --dht --no-dht: exit %d, %q; want --no-dht to win", code, stderr)
	}
}

// TestCreateURLsAndStdio: create refuses URLs it cannot announce to; -o - and parse - pipe.
func TestCreateURLsAndStdio(t *testing.T) {
	src := t.TempDir()
	writeRandomFiles(t, src, map[string]int{"f.bin": 50_000}, 2)
	file := filepath.Join(src, "f.bin")
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-t", "not a url"}, `--tracker "not a url": want a URL that starts with http:// or https:// or udp://`},
		{[]string{"-t", "ftp://x/announce"}, "--tracker"},
		{[]string{"-t", "http:///announce"}, "no host"},
		{[]string{"-t", "udp://tracker.example/announce"}, "needs a port"},
		{[]string{"-t", "udp://tracker.example:99999"}, "port 99999"},
		{[]string{"-t", "http://a/announce,nope"}, `--tracker "nope"`},
		{[]string{"-w", "nope"}, `--web-seed "nope": want a URL that starts with http:// or https://`},
		{[]string{"-w", "udp://x:1/"}, "--web-seed"},
	} {
		out := filepath.Join(t.TempDir(), "x.torrent")
		code, _, stderr := runCLI(t, "", append([]string{"create", file, "-o", out}, tt.flags...)...)
		if code != exitFailure || !strings.Contains(oneErrorLine(t, stderr), tt.want) {
			t.Errorf("create %q: exit %d, %q; want %q", tt.flags, code, stderr, tt.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("create %q wrote %s anyway", tt.flags, out)
		}
	}
	code, torrent, stderr := runCLI(t, "", "create", file, "-o", "-", "-t", "udp://tracker.example:6969/announce", "-w", "https://mirror.example/f.bin")
	if code != 0 || !strings.Contains(stderr, "info hash") {
		t.Fatalf("create -o -: exit %d, %q", code, stderr)
	}
	mi, err := torrentfile.ParseBytes([]byte(torrent))
	if err != nil {
		t.Fatalf("create -o - wrote no torrent to stdout: %v", err)
	}
	code, out, stderr := runCLI(t, torrent, "parse", "--json", "-")
	var j torrentJSON
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.InfoHash != mi.InfoHash.Hex() {
		t.Errorf("parse -: exit %d, %q, %q", code, out, stderr)
	}
	code, _, stderr = runCLI(t, "garbage", "parse", "-")
	if code != exitFailure || !strings.HasPrefix(stderr, "gotfs: standard input: invalid bencoding") {
		t.Errorf("parse - of garbage: exit %d, %q", code, stderr)
	}
}

// TestJSONOutput: empty lists are [], URLs keep their & as it is.
func TestJSONOutput(t *testing.T) {
	tf := writeTestTorrent(t, torrentfile.CreateOptions{Trackers: [][]string{{"http://127.0.0.1:1/announce?a=1&b=2"}}})
	for _, args := range [][]string{
		{"parse", "--json", tf},
		{"parse", "--json", "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"},
		{"cache", "ls", "--json", "--cache-dir", t.TempDir()},
		{"peers", "--json", "--timeout", "2s", tf},
	} {
		_, out, stderr := runCLI(t, "", args...)
		if !json.Valid([]byte(out)) {
			t.Errorf("%q: not JSON: %q %q", args, out, stderr)
			continue
		}
		if strings.Contains(out, "null") || strings.Contains(out, `\u0026`) {
			t.Errorf("%q: JSON has null or \\u0026:\n%s", args, out)
		}
	}
	_, out, _ := runCLI(t, "", "parse", "--json", tf)
	for _, want := range []string{`"web_seeds": []`, `"nodes": []`, `announce?a=1&b=2`} {
		if !strings.Contains(out, want) {
			t.Errorf("parse --json lacks %s:\n%s", want, out)
		}
	}
}

// TestCacheFolderWithoutHome: a system service has neither $HOME nor $XDG_CACHE_HOME.
func TestCacheFolderWithoutHome(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	r, err := (&engineFlags{}).root()
	if os.Geteuid() == 0 {
		if err != nil || r.Dir != "/var/cache/gotfs" {
			t.Errorf("root without HOME: %q, %v; want /var/cache/gotfs", r.Dir, err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "--cache-dir") {
		t.Errorf("user without HOME: %q, %v; want an error naming --cache-dir", r.Dir, err)
	}
	if r, err := (&engineFlags{cacheDir: "rel"}).root(); err != nil || !filepath.IsAbs(r.Dir) {
		t.Errorf("--cache-dir rel: %q, %v", r.Dir, err)
	}
}

// TestUnmountRefusesOtherFilesystems: gotfs unmount of a tmpfs (or a plain folder) leaves it
// alone with a clear error.
func TestUnmountRefusesOtherFilesystems(t *testing.T) {
	dir := testenv.SmallTmpfs(t, "1m")
	for _, lazy := range []bool{false, true} {
		args := []string{"unmount", dir}
		if lazy {
			args = append(args, "--lazy")
		}
		code, _, stderr := runCLI(t, "", args...)
		if want := "gotfs: " + dir + ": not a gotfs mount (it is tmpfs)"; code != exitFailure || !strings.HasPrefix(oneErrorLine(t, stderr), want) {
			t.Errorf("%q: exit %d, %q; want %q", args, code, stderr, want)
		}
		if !isMounted(dir) {
			t.Fatalf("%q unmounted the tmpfs", args)
		}
	}
	plain := t.TempDir()
	code, _, stderr := runCLI(t, "", "unmount", plain)
	if code != exitFailure || oneErrorLine(t, stderr) != "gotfs: "+plain+": not a mount point" {
		t.Errorf("unmount of a plain folder: exit %d, %q", code, stderr)
	}
}

// TestManPagesAndInstall: make install puts the binary, a man page per command and the
// completions under PREFIX.
func TestManPagesAndInstall(t *testing.T) {
	testenv.RequireBinary(t, "make")
	prefix := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "install", "PREFIX="+prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, p := range []string{
		"bin/gotfs", "share/man/man1/gotfs.1", "share/man/man1/gotfs-mount.1", "share/man/man1/gotfs-cache-rm.1",
		"share/bash-completion/completions/gotfs", "share/zsh/site-functions/_gotfs", "share/fish/vendor_completions.d/gotfs.fish",
	} {
		b, err := os.ReadFile(filepath.Join(prefix, p))
		if err != nil || len(b) == 0 {
			t.Errorf("make install: %s: %v", p, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(prefix, "share/man/man1/gotfs-mount.1"))
	for _, want := range []string{".TH \"GOTFS\" \"1\"", "gotfs mount TORRENT|DIR|MAGNET MOUNTPOINT", `\fB--cache-size\fP`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("gotfs-mount.1 lacks %q", want)
		}
	}
	if out, err := exec.Command(filepath.Join(prefix, "bin/gotfs"), "version").Output(); err != nil || !strings.HasPrefix(string(out), "gotfs v") {
		t.Errorf("installed gotfs version: %q, %v", out, err)
	}
}

// TestPeersRefusedUDPTracker: a UDP tracker whose port is closed is reported as refused (the
// connected socket hears the ICMP port unreachable) instead of being waited for.
func TestPeersRefusedUDPTracker(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()
	tf := writeTestTorrent(t, torrentfile.CreateOptions{Trackers: [][]string{{"udp://" + closed + "/announce"}}})
	code, out, stderr := runCLI(t, "", "peers", tf, "--timeout", "60s")
	if code != exitFailure || !strings.Contains(out, "connection refused") || !strings.Contains(stderr, "no tracker answered") {
		t.Errorf("peers with a closed UDP tracker port: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
