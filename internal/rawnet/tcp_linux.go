//go:build linux

// Package rawnet makes the reads and writes of TCP connections raw system calls that keep the
// goroutine's processor (see TCP).
package rawnet

import (
	"io"
	"net"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/gotfs/gotfs/internal/racebuild"
	"golang.org/x/sys/unix"
)

// TCP returns c with its Read and Write made as raw read(2) and write(2) system calls
// inside the socket's RawConn, when c is a *net.TCPConn; any other connection is returned as
// it is. The socket is non-blocking, so such a call never waits: an empty or full buffer is
// EAGAIN, and the runtime's poller then waits for the socket, honouring the deadlines, as
// net.Conn does. What changes is that the call keeps the goroutine's processor (P). Made as
// a blocking system call, as net.Conn makes it, a read or write that outlasted a tick of the
// runtime's monitor (20 us, common for 128 KiB on loopback) had its P handed to another
// thread and back, and any such call woke an idle monitor into polling every 20 us.
//
// Under the race detector c is returned as it is (racebuild).
func TCP(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || racebuild.Enabled {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &tcpConn{TCPConn: tc, rc: rc}
}

// tcpConn is a *net.TCPConn whose Read and Write are raw system calls (TCP).
type tcpConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// Read reads into p, as net.Conn's Read does.
func (c *tcpConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	rerr := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				if n == 0 {
					err = io.EOF
				}
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // the poller waits for the next bytes
			default:
				err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: e}
				return true
			}
		}
	})
	runtime.KeepAlive(p)
	if rerr != nil {
		return 0, rerr
	}
	return n, err
}

// Write writes all of p, as net.Conn's Write does.
func (c *tcpConn) Write(p []byte) (int, error) {
	n := 0
	var err error
	werr := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false // the poller waits for room
			default:
				err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: e}
				return true
			}
		}
		return true
	})
	runtime.KeepAlive(p)
	if werr != nil {
		return n, werr
	}
	return n, err
}
