//go:build !linux

package p2p

import "net"

// RawTCP returns c: raw socket calls are made on Linux only.
func RawTCP(c net.Conn) net.Conn { return c }
