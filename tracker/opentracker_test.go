package tracker_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/tracker"
)

func randomHash(t testing.TB) torrentfile.Hash {
	t.Helper()
	var h torrentfile.Hash
	if _, err := rand.Read(h[:]); err != nil {
		t.Fatal(err)
	}
	return h
}

func peerID(n int) torrentfile.Hash {
	var id torrentfile.Hash
	copy(id[:], fmt.Sprintf("-GT0001-%012d", n))
	return id
}

func loopback(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

// TestOpentracker runs announces and scrapes against a real opentracker over HTTP and UDP.
func TestOpentracker(t *testing.T) {
	hHTTP, hUDP, hMixed := randomHash(t), randomHash(t), randomHash(t)
	ot := testenv.StartOpentracker(t, hHTTP)
	ot.Allow(t, hUDP)
	ot.Allow(t, hMixed)

	c := tracker.NewClient(tracker.ClientOptions{Timeout: 10 * time.Second, UDPRetransmitBase: 200 * time.Millisecond})
	defer c.Close()

	for _, tc := range []struct {
		name       string
		hash       torrentfile.Hash
		first, via string // URLs for the registering announces and for the checking one
	}{
		{"http", hHTTP, ot.HTTPAnnounceURL(), ot.HTTPAnnounceURL()},
		{"udp", hUDP, ot.UDPAnnounceURL(), ot.UDPAnnounceURL()},
		{"udp-then-http", hMixed, ot.UDPAnnounceURL(), ot.HTTPAnnounceURL()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// One seeder and two leechers register.
			var want []netip.AddrPort
			for i, left := range []int64{0, 1000, 5000} {
				port := uint16(20001 + i)
				want = append(want, loopback(port))
				resp, err := c.Announce(ctx, tc.first, tracker.AnnounceRequest{
					InfoHash: tc.hash, PeerID: peerID(i), Port: port, Left: left,
					Event: tracker.EventStarted, NumWant: 50, Key: uint32(i + 1),
				})
				if err != nil {
					t.Fatalf("announce %d: %v", i, err)
				}
				if resp.Interval <= 0 {
					t.Errorf("announce %d: interval %v, want > 0", i, resp.Interval)
				}
			}
			// A fourth peer asks and must see the other three (opentracker also lists the
			// asking peer itself; loopback addresses are returned as they are).
			resp, err := c.Announce(ctx, tc.via, tracker.AnnounceRequest{
				InfoHash: tc.hash, PeerID: peerID(9), Port: 20009, Left: 1, Event: tracker.EventStarted,
			})
			if err != nil {
				t.Fatalf("announce: %v", err)
			}
			for _, p := range want {
				if !slices.Contains(resp.Peers, p) {
					t.Errorf("peer %v missing from %v", p, resp.Peers)
				}
			}
			if len(resp.Peers) > 4 {
				t.Errorf("got %d peers %v, want at most 4", len(resp.Peers), resp.Peers)
			}
			if resp.Seeders != 1 || resp.Leechers != 3 {
				t.Errorf("announce counts: seeders %d leechers %d, want 1 and 3", resp.Seeders, resp.Leechers)
			}

			for _, u := range []string{ot.HTTPAnnounceURL(), ot.UDPAnnounceURL()} {
				other := randomHash(t) // not whitelisted: unknown to the tracker
				res, err := c.Scrape(ctx, u, []torrentfile.Hash{tc.hash, other})
				if err != nil {
					t.Fatalf("scrape %s: %v", u, err)
				}
				got, ok := res[tc.hash]
				if !ok {
					t.Fatalf("scrape %s: no entry for the hash: %v", u, res)
				}
				if got.Seeders != 1 || got.Leechers != 3 {
					t.Errorf("scrape %s: %+v, want 1 seeder and 3 leechers", u, got)
				}
			}

			// The seeder leaves: it is no longer handed out.
			if _, err := c.Announce(ctx, tc.first, tracker.AnnounceRequest{
				InfoHash: tc.hash, PeerID: peerID(0), Port: 20001, Event: tracker.EventStopped,
			}); err != nil {
				t.Fatalf("stopped announce: %v", err)
			}
			resp, err = c.Announce(ctx, tc.via, tracker.AnnounceRequest{
				InfoHash: tc.hash, PeerID: peerID(9), Port: 20009, Left: 1,
			})
			if err != nil {
				t.Fatalf("announce: %v", err)
			}
			if slices.Contains(resp.Peers, loopback(20001)) {
				t.Errorf("stopped peer still listed: %v", resp.Peers)
			}
			if resp.Seeders != 0 {
				t.Errorf("seeders after stop = %d, want 0", resp.Seeders)
			}
		})
	}

	t.Run("not-whitelisted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// HTTP: a failure reason.
		_, err := c.Announce(ctx, ot.HTTPAnnounceURL(), tracker.AnnounceRequest{InfoHash: randomHash(t), PeerID: peerID(1), Port: 1234, Left: 1})
		var te *tracker.TrackerError
		if !errors.As(err, &te) {
			t.Errorf("HTTP: error %v, want a *TrackerError", err)
		}
		// UDP: opentracker sends a bare 8-byte announce header; that must fail at once, not
		// after retransmissions.
		start := time.Now()
		_, err = c.Announce(ctx, ot.UDPAnnounceURL(), tracker.AnnounceRequest{InfoHash: randomHash(t), PeerID: peerID(1), Port: 1234, Left: 1})
		if err == nil || errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 150*time.Millisecond {
			t.Errorf("UDP: error %v after %v, want an immediate error", err, time.Since(start))
		}
	})

	t.Run("tiers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dead := "http://127.0.0.1:1/announce"
		tiers := tracker.NewTiers([][]string{{dead}, {ot.UDPAnnounceURL()}})
		resp, from, err := tiers.Announce(ctx, c, tracker.AnnounceRequest{
			InfoHash: hHTTP, PeerID: peerID(7), Port: 20007, Left: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if from != ot.UDPAnnounceURL() || len(resp.Peers) == 0 {
			t.Errorf("answer from %s with %d peers", from, len(resp.Peers))
		}
	})
}
