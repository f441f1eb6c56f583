// Package testenv holds helpers shared by gotfs tests: finding the real BitTorrent software
// the interop tests run against, and refusing to skip those tests in CI.
package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireBinary returns the path of the named program. When it is missing the test fails in
// CI and is skipped elsewhere, with the reason printed.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if InCI() {
		t.Fatalf("%s is not installed; CI must install it (see .ci/run)", name)
	}
	t.Skipf("skipping: reason: %s is not installed (apt-get install it, or run make test which does)", name)
	return ""
}

// RequireRoot fails in CI and skips elsewhere when the test does not run as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("CI must run as root: %s", why)
	}
	t.Skipf("skipping: reason: not root, needed for %s", why)
}

// RequireFUSE skips the test (or fails it in CI) unless real FUSE mounts can be made here:
// root and /dev/fuse.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireRoot(t, "real FUSE mounts")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if InCI() {
			t.Fatalf("CI must provide /dev/fuse: %v", err)
		}
		t.Skipf("skipping: reason: /dev/fuse is missing: %v", err)
	}
}

// LockedBuffer is a bytes.Buffer that a subprocess's output and the test reading it may use at
// once.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreePort returns a port that was free a moment ago on ip and, for TCP and UDP, on the
// wildcard addresses of both families: a program that binds the wildcard (aria2c's DHT, or
// its listen port without --interface) cannot use a port another test holds on some
// 127.0.0.x.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("free port on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if freeEverywhere(port) {
			return port
		}
	}
	t.Fatalf("no port free on %s and on the wildcard addresses", ip)
	return 0
}

// freeEverywhere reports whether port can be bound on the wildcard addresses: TCP (both
// families at once) and UDP on each family.
func freeEverywhere(port int) bool {
	addr := fmt.Sprintf(":%d", port)
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	held = append(held, l)
	for _, network := range []string{"udp4", "udp6"} {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return false
		}
		held = append(held, c)
	}
	return true
}

// TCPPair returns two connected TCP sockets on 127.0.0.1 (unlike net.Pipe, the kernel
// buffers between them), closed when the test ends.
func TCPPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}
