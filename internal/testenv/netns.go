package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace made for one test (ip netns add) and deleted when the test
// ends, whatever its outcome.
type Netns struct {
	// Name is the namespace's name, unique to this test process.
	Name string
}

var netnsSeq atomic.Int64

// NewNetns makes a network namespace with its loopback up. It needs root and the ip command
// (the test fails in CI, and is skipped elsewhere, without them). The name has the process id
// in it, so parallel test processes never collide; each veth end made with Veth goes away with
// its namespace.
func NewNetns(t testing.TB, short string) *Netns {
	t.Helper()
	RequireRoot(t, "network namespaces")
	RequireBinary(t, "ip")
	n := &Netns{Name: fmt.Sprintf("gotfs-%s-%d-%d", short, os.Getpid(), netnsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		// Processes left in it would keep it alive; the test's own cleanups end them first
		// (t.Cleanup runs last-in first-out).
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// IP runs `ip -n NAME args...` and fails the test on error.
func (n *Netns) IP(t testing.TB, args ...string) {
	t.Helper()
	args = append([]string{"-n", n.Name}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Command returns a command that runs inside the namespace (ip netns exec).
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs f on an OS thread that was moved into the namespace, and waits for it. Sockets
// that f opens on its own goroutine belong to the namespace for their whole life, wherever
// they are used later; goroutines f starts do not run in the namespace, so f must open
// every socket itself. f must not call t.FailNow (t.Fatal): it does not run on the test's
// goroutine. The thread is thrown away afterwards.
func (n *Netns) Do(t testing.TB, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine, so no other goroutine ever
		// runs in the namespace.
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/run/netns", n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic: %v", r)
			}
		}()
		f()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in namespace %s: %v", n.Name, err)
	}
}

// Veth joins namespace a (interface aName) and b (interface bName) with a veth pair and brings
// both ends up.
func Veth(t testing.TB, a *Netns, aName string, b *Netns, bName string) {
	t.Helper()
	if a == nil || b == nil {
		t.Fatal(errors.New("veth: nil namespace"))
	}
	// Made in a, so no end ever appears in the test's own namespace.
	a.IP(t, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.IP(t, "link", "set", aName, "up")
	b.IP(t, "link", "set", bName, "up")
}
