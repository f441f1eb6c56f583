package fetch

import (
	"net"
	"net/netip"
	"testing"
)

// TestListenBothFamilies: a listen address without a host (":0", the default) accepts peers
// over IPv4 and IPv6 alike: one dual-stack TCP socket.
func TestListenBothFamilies(t *testing.T) {
	c, err := NewClient(Config{ListenAddr: ":0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ip := c.Addr().Addr(); !ip.IsUnspecified() || !ip.Is6() {
		t.Errorf("listening on %v, want [::]", c.Addr())
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		to := netip.AddrPortFrom(netip.MustParseAddr(ip), c.Port())
		nc, err := net.Dial("tcp", to.String())
		if err != nil {
			t.Errorf("dial %v: %v", to, err)
			continue
		}
		nc.Close()
	}
}
