package utp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

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
	raw      syscall.RawConn
}

// enableOffload turns on GRO for reads on pc and reports which offloads work on it.
func enableOffload(pc *net.UDPConn) offload {
	var o offload
	raw, err := pc.SyscallConn()
	if err != nil {
		return o
	}
	o.raw = raw
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

// canSegment reports whether sends to to may go through sendRun (a zoned IPv6 address or
// an IPv6 peer of an IPv4 socket takes the net package's path).
func (o *offload) canSegment(to netip.AddrPort) bool {
	return o.gso && to.Addr().Zone() == "" && (o.v6 || to.Addr().Is4())
}

// sendRun sends dgrams (a gsoRun) in one sendmsg that the kernel splits into datagrams of
// the first one's size. The kernel reads them where they lie (a scatter-gather list), so
// they are not copied into one buffer first.
func (o *offload) sendRun(dgrams [][]byte, to netip.AddrPort) error {
	var sa unix.Sockaddr
	if o.v6 {
		sa = &unix.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	}
	oob := gsoCmsg(nil, len(dgrams[0]))
	var err error
	werr := o.raw.Write(func(fd uintptr) bool {
		_, err = unix.SendmsgBuffers(int(fd), dgrams, oob, sa, 0)
		return err != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return err
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
