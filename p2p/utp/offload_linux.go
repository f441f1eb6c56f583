package utp

import (
	"encoding/binary"
	"errors"
	"net"
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

// enableOffload turns on GRO for reads on pc and reports which offloads work on it.
func enableOffload(pc *net.UDPConn) (gso, gro bool) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return false, false
	}
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro
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
