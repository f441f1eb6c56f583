//go:build !race

// Package racebuild tells whether the binary was built with the race detector. The race
// detector learns that bytes written to one descriptor happen before they are read from
// another only from the annotations in package syscall's Read, Write, Pread and Recvmsg;
// code that makes raw system calls instead (internal/rawnet, cache, p2p/utp) falls back to
// those calls under -race, so that the detector keeps that order and reports no false races.
package racebuild

// Enabled reports whether the binary was built with the race detector (-race).
const Enabled = false
