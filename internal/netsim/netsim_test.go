package netsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gotfs/gotfs/tracker"
)

// echoServer echoes every connection back.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln
}

// dialEcho starts an echo server behind a forwarder over link and dials the forwarder.
func dialEcho(t *testing.T, link Link) (*Forwarder, net.Conn) {
	t.Helper()
	echo := echoServer(t)
	f, err := NewForwarder("127.0.0.1:0", echo.Addr().String(), link, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return f, c
}

// TestForwarderDelay: bytes arrive intact, and a round trip takes at least twice the one-way
// delay (a lower bound: it holds however loaded the machine is).
func TestForwarderDelay(t *testing.T) {
	const delay = 40 * time.Millisecond
	_, c := dialEcho(t, Link{Delay: delay})
	msg := make([]byte, 100_000)
	rand.Read(msg)
	for range 3 {
		start := time.Now()
		go c.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 2*delay {
			t.Errorf("round trip %v through a %v one-way link", rtt, delay)
		}
		if !bytes.Equal(got, msg) {
			t.Fatal("bytes changed on the way")
		}
	}
}

// TestForwarderRate: a capped link takes at least size/rate (less one burst) for a transfer.
func TestForwarderRate(t *testing.T) {
	const rateBps = 4 << 20
	_, c := dialEcho(t, Link{Rate: rateBps})
	const size = 2 << 20
	start := time.Now()
	go c.Write(make([]byte, size))
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	// Each direction is capped: the echo crosses the link twice, but the two directions run
	// concurrently, so one size/rate (less the burst) is the bound.
	if min := time.Duration(float64(size-chunkSize) / rateBps * float64(time.Second)); time.Since(start) < min {
		t.Errorf("%d bytes in %v over a %d B/s link, want at least %v", size, time.Since(start), rateBps, min)
	}
}

// TestForwarderClose: Close cuts live connections and returns.
func TestForwarderClose(t *testing.T) {
	echo := echoServer(t)
	f, err := NewForwarder("127.0.0.1:0", echo.Addr().String(), Link{Delay: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("held for an hour"))
	time.Sleep(20 * time.Millisecond)
	f.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after Close")
	}
}

// TestStaticTracker: our own tracker client reads the fixed peer list.
func TestStaticTracker(t *testing.T) {
	peers := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:7001"), netip.MustParseAddrPort("127.0.0.3:7002")}
	st, err := NewStaticTracker(peers)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st)
	defer srv.Close()
	tc := tracker.NewClient(tracker.ClientOptions{})
	defer tc.Close()
	resp, err := tc.Announce(context.Background(), srv.URL+"/announce", tracker.AnnounceRequest{Port: 1, Left: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Peers, peers) {
		t.Errorf("peers %v, want %v", resp.Peers, peers)
	}
	r, _ := http.Get(srv.URL + "/scrape")
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("scrape: %s", r.Status)
	}
	if _, err := NewStaticTracker([]netip.AddrPort{netip.MustParseAddrPort("[::1]:1")}); err == nil {
		t.Error("IPv6 peer accepted in a compact IPv4 list")
	}
}
