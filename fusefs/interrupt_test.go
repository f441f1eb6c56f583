package fusefs_test

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fusefs"
)

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestInterruptAndUnmountBlockedRead blocks reads on pieces no peer has: SIGINT ends them within
// a second (both a buffered cat and an O_DIRECT dd, whose read reaches us as an interruptible
// request), and unmounting while a read is blocked does not hang.
func TestInterruptAndUnmountBlockedRead(t *testing.T) {
	requireFUSE(t)
	mi := makeTorrent(t, t.TempDir(), "lonely", []testFile{{path: []string{"f"}, size: 1_000_000}}, 32<<10, 20)
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, nil, mi)
	path := m.path(mi.Info.Files[0])
	tor := m.tors[0]
	blocked := func() bool { return tor.Stats().WaitingReads > 0 }

	for _, args := range [][]string{
		{"dd", "if=" + path, "of=/dev/null", "bs=4096", "count=1", "iflag=direct", "status=none"},
		{"cat", path},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if !waitFor(5*time.Second, blocked) {
			cmd.Process.Kill()
			t.Fatalf("%s: no read blocked", args[0])
		}
		start := time.Now()
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s: exited %v after SIGINT", args[0], d)
			} else {
				t.Logf("%s: exited %v after SIGINT", args[0], d)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s: still blocked 5s after SIGINT", args[0])
		}
		if args[0] == "dd" && !waitFor(time.Second, func() bool { return !blocked() }) {
			t.Errorf("the interrupted read is still waiting in the filesystem: %+v", tor.Stats())
		}
	}

	// Unmount while a read is blocked.
	cmd := exec.Command("dd", "if="+path, "of=/dev/null", "bs=4096", "count=1", "skip=100", "iflag=direct", "status=none")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(5*time.Second, func() bool { return tor.Stats().WaitingReads > 0 })
	start := time.Now()
	unmounted := make(chan error, 1)
	go func() { unmounted <- m.fs.Unmount() }()
	select {
	case err := <-unmounted:
		if err != nil {
			t.Errorf("unmount: %v", err)
		}
		t.Logf("unmount with a blocked read took %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("unmount hangs while a read is blocked")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("dd succeeded reading a piece nobody has")
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Error("dd still blocked after unmount")
	}
	if got := mountsOf(m.dir); len(got) != 0 {
		t.Errorf("still mounted: %q", got)
	}
}
