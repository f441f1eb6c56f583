//go:build !linux

package utp

import (
	"errors"
	"net"
	"net/netip"
)

// offload: segmentation offloads are Linux's; elsewhere every datagram is a system call.
type offload struct {
	gso, gro bool
}

func enableOffload(*net.UDPConn) offload { return offload{} }

func (o *offload) canSendRaw(netip.AddrPort) bool { return false }

func (o *offload) canSegment(netip.AddrPort) bool { return false }

func (o *offload) send([][]byte, netip.AddrPort) error {
	return errors.New("utp: no raw sends on this system")
}

func (o *offload) canPoll() bool { return false }

func (o *offload) recvMsg([]byte, []byte, bool) (int, int, int, netip.AddrPort, error) {
	return 0, 0, 0, netip.AddrPort{}, errors.New("utp: no receive offload on this system")
}

func groSegmentSize([]byte) int { return 0 }

const oobSize = 0

func truncated(int) bool { return false }

func gsoUnsupported(error) bool { return true }
