package fusefs_test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
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
	testenv.RequireFUSE(t)
	mi := makeTorrent(t, t.TempDir(), "lonely", []testFile{{Path: []string{"f"}, Size: 1_000_000}}, 32<<10, 20)
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

// TestUnmountWithOpenFile unmounts while a file is held open: the mount is detached lazily,
// Unmount returns, and the open file no longer reads cache files (EIO, not stale data).
func TestUnmountWithOpenFile(t *testing.T) {
	testenv.RequireFUSE(t)
	s := newSwarm(t, "held", []testFile{{Path: []string{"f"}, Size: 300_000}}, 32<<10, 21, "127.0.0.33")
	m := mountTorrents(t, t.TempDir(), fusefs.Options{}, s.peers, s.mi)
	h, err := os.OpenFile(m.path(s.mi.Info.Files[0]), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.fs.Unmount(); err != nil {
		t.Fatalf("unmount with an open file: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("unmount with an open file took %v", d)
	}
	if got := mountsOf(m.dir); len(got) != 0 {
		t.Errorf("still in the mount table: %q", got)
	}
	if _, err := h.ReadAt(make([]byte, 4096), 0); err == nil {
		t.Error("read through a detached mount succeeded after Unmount")
	}
}
