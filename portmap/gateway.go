package portmap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// maxRouteTable bounds how much of /proc/net/route is read.
const maxRouteTable = 1 << 20

// DefaultGateway returns the gateway of the IPv4 default route with the lowest metric, read
// from /proc/net/route.
func DefaultGateway() (netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("default gateway: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRouteTable))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("default gateway: %w", err)
	}
	return parseRouteTable(b)
}

// parseRouteTable finds the default route's gateway in the text of /proc/net/route: a header
// line, then one route a line with tab-separated hex fields, addresses in host (little-endian)
// byte order.
func parseRouteTable(b []byte) (netip.Addr, error) {
	const rtfUp, rtfGateway = 0x1, 0x2
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 512), 4096)
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	for first := true; sc.Scan(); first = false {
		fields := strings.Fields(sc.Text())
		if first || len(fields) < 8 {
			continue // header, or not a route line
		}
		dest, err1 := strconv.ParseUint(fields[1], 16, 32)
		flags, err2 := strconv.ParseUint(fields[3], 16, 16)
		metric, err3 := strconv.ParseUint(fields[6], 10, 32)
		mask, err4 := strconv.ParseUint(fields[7], 16, 32)
		gw, err5 := hex.DecodeString(fields[2])
		if errors.Join(err1, err2, err3, err4, err5) != nil || len(gw) != 4 {
			continue
		}
		if dest != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || metric >= bestMetric {
			continue
		}
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], binary.BigEndian.Uint32(gw))
		if addr := netip.AddrFrom4(a); addr.IsValid() && !addr.IsUnspecified() {
			best, bestMetric = addr, metric
		}
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("default gateway: route table: %w", err)
	}
	if !best.IsValid() {
		return netip.Addr{}, errors.New("default gateway: no IPv4 default route")
	}
	return best, nil
}

// localAddrTo returns our address on the way to gw: the source address the kernel picks for
// a datagram to it (no datagram is sent).
func localAddrTo(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, natpmpPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("local address toward %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
