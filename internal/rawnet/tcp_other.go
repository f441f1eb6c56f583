//go:build !linux

// Package rawnet makes the reads and writes of TCP connections raw system calls on Linux.
package rawnet

import "net"

// TCP returns c: raw socket calls are made on Linux only.
func TCP(c net.Conn) net.Conn { return c }
