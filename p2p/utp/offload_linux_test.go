package utp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/racebuild"
	"github.com/gotfs/gotfs/internal/testenv"
)

// requireOffload fails in CI, and skips elsewhere, when the kernel lacks UDP GSO or GRO.
func requireOffload(t *testing.T, s *Socket) {
	t.Helper()
	if s.gso.Load() && s.gro {
		return
	}
	if testenv.InCI() {
		t.Fatalf("UDP GSO/GRO unavailable (gso=%v gro=%v): CI needs Linux 5.0 or later", s.gso.Load(), s.gro)
	}
	t.Skip("skipping: reason: the kernel lacks UDP GSO or GRO (Linux 5.0 or later has both)")
}

// TestOffloadTransfer: over real UDP sockets data leaves in offloaded sends and arrives in
// coalesced reads, byte-identical: IPv4, IPv6, and a dual-stack socket sending to IPv4 (its
// sends take IPv4-mapped addresses). With offloads off the same transfer takes neither path.
func TestOffloadTransfer(t *testing.T) {
	for _, tc := range []struct {
		name        string
		netA, addrA string
		netB, addrB string
		noOffload   bool
	}{
		{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.2:0", false},
		{"ipv4-nooffload", "udp4", "127.0.0.1:0", "udp4", "127.0.0.2:0", true},
		{"ipv6", "udp6", "[::1]:0", "udp6", "[::1]:0", false},
		{"dualstack-to-ipv4", "udp", "[::]:0", "udp4", "127.0.0.2:0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := func(network, addr string) *Socket {
				s, err := Listen(network, addr, Config{noOffload: tc.noOffload})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			a, b := open(tc.netA, tc.addrA), open(tc.netB, tc.addrB)
			if !tc.noOffload {
				requireOffload(t, a)
			}
			ca, cb := connect(t, a, b)
			transfer(t, ca, cb, randomBytes(8<<20, 12), 20*time.Second)
			sends, runs := a.gsoSends.Load(), b.groRuns.Load()
			t.Logf("offloaded sends %d, coalesced reads %d; sender %+v", sends, runs, ca.Stats())
			if tc.noOffload && (sends != 0 || runs != 0) || !tc.noOffload && (sends == 0 || runs == 0) {
				t.Fatalf("noOffload=%v but %d offloaded sends and %d coalesced reads", tc.noOffload, sends, runs)
			}
		})
	}
}

// TestCoalescedNonUTP: a coalesced read of datagrams that are not uTP reaches NonUTP as the
// separate datagrams they were.
func TestCoalescedNonUTP(t *testing.T) {
	s := listen(t, "127.0.0.1", Config{})
	requireOffload(t, s)
	other := s.NonUTP()
	raw := newRawPeer(t, "127.0.0.2")
	var msgs [][]byte
	for i := range 3 {
		msgs = append(msgs, fmt.Appendf(nil, "d1:q4:ping1:t2:%02de", i))
	}
	to := s.Addr().(*net.UDPAddr).AddrPort()
	if _, _, err := raw.pc.WriteMsgUDPAddrPort(bytes.Join(msgs, nil), gsoCmsg(nil, len(msgs[0])), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	other.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i, want := range msgs {
		n, _, err := other.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %q, %v; want %q", i, buf[:n], err, want)
		}
	}
	if s.groRuns.Load() == 0 {
		t.Fatal("the three datagrams did not arrive as one coalesced read")
	}
}

// TestSendOne: a lone datagram (an ACK, a RESET, a single packet) leaves through the raw
// sendmsg path where the address fits the socket, and arrives whole from the socket's port:
// IPv4, IPv6, and a dual-stack socket sending to IPv4 (an IPv4-mapped address). An IPv6 peer
// of an IPv4 socket, or a zoned address, takes the net package's path.
func TestSendOne(t *testing.T) {
	for _, tc := range []struct {
		name          string
		network, addr string
		peerNet, peer string
	}{
		{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.2:0"},
		{"ipv6", "udp6", "[::1]:0", "udp6", "[::1]:0"},
		{"dualstack-to-ipv4", "udp", "[::]:0", "udp4", "127.0.0.2:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Listen(tc.network, tc.addr, Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pc, err := net.ListenPacket(tc.peerNet, tc.peer)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			to := pc.LocalAddr().(*net.UDPAddr).AddrPort()
			if !s.off.canSendRaw(to) {
				t.Fatalf("canSendRaw(%v) on a %s socket is false", to, tc.network)
			}
			msg := []byte("a lone datagram, sent raw")
			if err := s.writeTo(msg, to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], msg) {
				t.Fatalf("got %q, want %q", buf[:n], msg)
			}
			if got, want := from.(*net.UDPAddr).Port, s.Addr().(*net.UDPAddr).Port; got != want {
				t.Fatalf("from port %d, want the socket's %d", got, want)
			}
		})
	}
	s := listen(t, "127.0.0.1", Config{})
	for _, to := range []string{"[::1]:6881", "[fe80::1%lo]:6881"} {
		if s.off.canSendRaw(netip.MustParseAddrPort(to)) {
			t.Errorf("canSendRaw(%s) on an IPv4 socket is true", to)
		}
	}
}

// TestRecvMsgNoWait: a read that may not wait returns errWouldBlock at once from an empty
// socket (the moment the read loop lets its connections answer), and the datagram once one
// is queued. Under the race detector reads take the net package's path, which always waits,
// and canPoll says so.
func TestRecvMsgNoWait(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	o := enableOffload(pc)
	if racebuild.Enabled {
		if o.canPoll() {
			t.Fatal("canPoll under the race detector")
		}
		return
	}
	if !o.canPoll() {
		if testenv.InCI() {
			t.Fatal("UDP GRO unavailable: CI needs Linux 5.0 or later")
		}
		t.Skip("skipping: reason: the kernel lacks UDP GRO")
	}
	buf, oob := make([]byte, 2048), make([]byte, oobSize)
	start := time.Now()
	if _, _, _, _, err := o.recvMsg(buf, oob, false); !errors.Is(err, errWouldBlock) {
		t.Fatalf("empty socket: err %v, want errWouldBlock", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a read that may not wait took %v", d)
	}
	sender, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	if _, err := sender.Write([]byte("queued")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _, _, from, err := o.recvMsg(buf, oob, false)
		if errors.Is(err, errWouldBlock) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != "queued" || from.Port() != uint16(sender.LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("got %q from %v", buf[:n], from)
		}
		break
	}
}
