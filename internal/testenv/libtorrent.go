package testenv

import (
	"bufio"
	"os/exec"
	"testing"
	"time"
)

// RequireLibtorrentPython returns a python3 that imports libtorrent (Debian's
// python3-libtorrent lives under /usr/bin/python3, which may not be the first python3 on
// PATH). It fails the test in CI and skips it elsewhere when there is none.
func RequireLibtorrentPython(t testing.TB) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import libtorrent").Run() == nil {
			return py
		}
	}
	if InCI() {
		t.Fatal("python3-libtorrent is not installed; CI must install it (scripts/install-deps.sh)")
	}
	t.Skip("skipping: reason: python3-libtorrent is not installed (apt-get install python3-libtorrent)")
	return ""
}

// StartLibtorrentScript runs a Python script that uses libtorrent, with args. Its standard
// input stays open until the test ends (closing it tells the script to stop; it is killed
// after 5 s), its standard error is logged when the test fails, and its standard output is
// returned for the test to read.
func StartLibtorrentScript(t testing.TB, script string, args ...string) *bufio.Reader {
	t.Helper()
	cmd := exec.Command(RequireLibtorrentPython(t), append([]string{script}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("libtorrent stderr:\n%s", stderr.String())
		}
	})
	return bufio.NewReader(stdout)
}
