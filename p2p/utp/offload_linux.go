package utp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gotfs/gotfs/internal/racebuild"
	"golang.org/x/sys/unix"
)

// Linux's UDP segmentation offloads let one system call carry many datagrams. GSO
// (UDP_SEGMENT, Linux 4.18) sends a buffer of equal-size datagrams as one, which the kernel
// or the network card splits; GRO (UDP_GRO, Linux 5.0) hands a run of equal-size datagrams
// of one flow to a single read, with the size in a control message. On the wire they are
// ordinary datagrams, so peers notice nothing.

// gsoCmsgData is the size of UDP_SEGMENT's value (a __u16).
const gsoCmsgData = 2

// offload is what the kernel offers a socket; fixed once the socket starts.
type offload struct {
	gso, gro bool
	v6       bool // an AF_INET6 socket: IPv4 peers take IPv4-mapped addresses
	pc       *net.UDPConn
	raw      syscall.RawConn
	sends    *sync.Pool   // of *sendScratch
	recv     *recvScratch // the read loop's
}

// sendScratch is what one raw sendmsg needs. It is reused, so that a send allocates
// nothing: the function handed to RawConn.Write, and all it points to, would escape.
type sendScratch struct {
	iov  [maxGSOSegments]unix.Iovec
	msg  unix.Msghdr
	sa4  unix.RawSockaddrInet4
	sa6  unix.RawSockaddrInet6
	oob  [32]byte
	err  error
	call func(fd uintptr) bool // sends msg on fd
}

func newSendScratch() any {
	s := new(sendScratch)
	s.call = func(fd uintptr) bool {
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.msg)), 0)
		s.err = nil
		if e != 0 {
			s.err = e
		}
		return s.err != unix.EAGAIN
	}
	return s
}

// recvScratch is what one raw recvmsg needs, reused by the socket's read loop (the only
// caller of recvMsg) for the same reason.
type recvScratch struct {
	iov  unix.Iovec
	msg  unix.Msghdr
	sa   unix.RawSockaddrAny
	n    int
	err  error
	wait bool                  // wait for a datagram rather than return EAGAIN
	call func(fd uintptr) bool // receives into msg from fd
}

func newRecvScratch() *recvScratch {
	r := new(recvScratch)
	r.call = func(fd uintptr) bool {
		n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), 0)
		r.n, r.err = int(n), nil
		if e != 0 {
			r.n, r.err = 0, e
		}
		return r.err != unix.EAGAIN || !r.wait
	}
	return r
}

// canPoll reports whether recvMsg can return at once when nothing is queued (not under
// the race detector, whose reads take the net package's blocking path).
func (o *offload) canPoll() bool { return o.gro && !racebuild.Enabled }

// enableOffload turns on GRO for reads on pc and reports which offloads work on it.
func enableOffload(pc *net.UDPConn) offload {
	o := offload{pc: pc}
	raw, err := pc.SyscallConn()
	if err != nil {
		return o
	}
	o.raw = raw
	o.sends = &sync.Pool{New: newSendScratch}
	o.recv = newRecvScratch()
	_ = raw.Control(func(fd uintptr) {
		domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return
		}
		o.v6 = domain == unix.AF_INET6
		_, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		o.gso = err == nil
		o.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return o
}

// canSendRaw reports whether sends to to may go through send: the socket's raw descriptor is
// at hand, and to needs no zone and fits the socket's family (a zoned IPv6 address or an
// IPv6 peer of an IPv4 socket takes the net package's path).
func (o *offload) canSendRaw(to netip.AddrPort) bool {
	return o.raw != nil && to.Addr().Zone() == "" && (o.v6 || to.Addr().Is4())
}

// canSegment reports whether a run of datagrams to to may go through one send.
func (o *offload) canSegment(to netip.AddrPort) bool {
	return o.gso && o.canSendRaw(to)
}

// send sends dgrams to to in one sendmsg: one datagram as it is, a run of them (a gsoRun)
// as one buffer the kernel splits into datagrams of the first one's size (UDP_SEGMENT),
// reading them where they lie (a scatter-gather list), so they are not copied into one
// buffer first. The socket is non-blocking, so the sendmsg is a raw system call that keeps
// the goroutine's processor (docs/DESIGN.md §5; a full buffer is EAGAIN, and the runtime's
// poller waits for room).
func (o *offload) send(dgrams [][]byte, to netip.AddrPort) error {
	if len(dgrams) == 0 || len(dgrams) > maxGSOSegments {
		return errors.New("utp: no datagram, or too many for one send")
	}
	sc := o.sends.Get().(*sendScratch)
	defer o.sends.Put(sc)
	for i, d := range dgrams {
		sc.iov[i].Base = unsafe.SliceData(d)
		sc.iov[i].SetLen(len(d))
	}
	sc.msg = unix.Msghdr{}
	if o.v6 {
		sc.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
		port := (*[2]byte)(unsafe.Pointer(&sc.sa6.Port))
		binary.BigEndian.PutUint16(port[:], to.Port())
		sc.msg.Name = (*byte)(unsafe.Pointer(&sc.sa6))
		sc.msg.Namelen = unix.SizeofSockaddrInet6
	} else {
		sc.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
		port := (*[2]byte)(unsafe.Pointer(&sc.sa4.Port))
		binary.BigEndian.PutUint16(port[:], to.Port())
		sc.msg.Name = (*byte)(unsafe.Pointer(&sc.sa4))
		sc.msg.Namelen = unix.SizeofSockaddrInet4
	}
	sc.msg.Iov = &sc.iov[0]
	sc.msg.SetIovlen(len(dgrams))
	if len(dgrams) > 1 {
		oob := gsoCmsg(sc.oob[:0], len(dgrams[0]))
		sc.msg.Control = &oob[0]
		sc.msg.SetControllen(len(oob))
	}
	werr := o.raw.Write(sc.call)
	runtime.KeepAlive(dgrams)
	clear(sc.iov[:len(dgrams)]) // the pool must not keep the datagrams alive
	if werr != nil {
		return werr
	}
	return sc.err
}

// recvMsg reads one datagram, or a GRO run of them, into buf and its control messages into
// oob, as net.UDPConn.ReadMsgUDPAddrPort does, with a raw recvmsg as send sends. Without
// wait it returns errWouldBlock when nothing is queued (see canPoll). Under the race
// detector it is ReadMsgUDPAddrPort (internal/racebuild), which always waits.
func (o *offload) recvMsg(buf, oob []byte, wait bool) (n, oobn, flags int, from netip.AddrPort, err error) {
	if racebuild.Enabled {
		return o.pc.ReadMsgUDPAddrPort(buf, oob)
	}
	r := o.recv
	r.wait = wait
	r.iov.Base = unsafe.SliceData(buf)
	r.iov.SetLen(len(buf))
	r.msg = unix.Msghdr{}
	r.msg.Name = (*byte)(unsafe.Pointer(&r.sa))
	r.msg.Namelen = unix.SizeofSockaddrAny
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	if len(oob) > 0 {
		r.msg.Control = unsafe.SliceData(oob)
		r.msg.SetControllen(len(oob))
	}
	rerr := o.raw.Read(r.call)
	runtime.KeepAlive(buf)
	runtime.KeepAlive(oob)
	r.iov.Base, r.msg.Control = nil, nil // nothing of buf or oob stays referenced
	if rerr != nil {
		return 0, 0, 0, from, rerr
	}
	if r.err == unix.EAGAIN {
		return 0, 0, 0, from, errWouldBlock
	}
	if r.err != nil {
		return 0, 0, 0, from, &net.OpError{Op: "read", Net: "udp", Err: r.err}
	}
	switch r.sa.Addr.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		from = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), binary.BigEndian.Uint16(p[:]))
	case unix.AF_INET6:
		sa6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.sa))
		p := (*[2]byte)(unsafe.Pointer(&sa6.Port))
		from = netip.AddrPortFrom(netip.AddrFrom16(sa6.Addr), binary.BigEndian.Uint16(p[:]))
	}
	return r.n, int(r.msg.Controllen), int(r.msg.Flags), from, nil
}

// gsoCmsg returns a control message asking the kernel to split a send into datagrams of
// size bytes.
func gsoCmsg(buf []byte, size int) []byte {
	n := unix.CmsgSpace(gsoCmsgData)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	clear(buf)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&buf[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(gsoCmsgData))
	binary.NativeEndian.PutUint16(buf[unix.CmsgSpace(0):], uint16(size))
	return buf
}

// groSegmentSize returns the datagram size of a coalesced read from its control messages,
// or 0 when the read holds one datagram.
func groSegmentSize(oob []byte) int {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO {
			switch {
			case len(data) >= 4:
				return int(binary.NativeEndian.Uint32(data))
			case len(data) >= 2:
				return int(binary.NativeEndian.Uint16(data))
			}
			return 0
		}
		oob = rest
	}
	return 0
}

// oobSize is the room for the control messages of a read (UDP_GRO's takes 24 bytes).
const oobSize = 64

// gsoUnsupported reports whether a send failed because the path cannot segment (no
// checksum offload, IPsec), so that GSO should be given up for plain sends.
func gsoUnsupported(err error) bool { return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) }

// truncated reports whether the kernel cut a read short (MSG_TRUNC).
func truncated(flags int) bool { return flags&unix.MSG_TRUNC != 0 }
