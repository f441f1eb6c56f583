//go:build !linux

package utp

import "net"

// enableOffload: segmentation offloads are Linux's; elsewhere every datagram is a system
// call.
func enableOffload(*net.UDPConn) (gso, gro bool) { return false, false }

func gsoCmsg(buf []byte, _ int) []byte { return buf[:0] }

func groSegmentSize([]byte) int { return 0 }

const oobSize = 0

func truncated(int) bool { return false }

func gsoUnsupported(error) bool { return true }
