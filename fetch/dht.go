package fetch

import (
	"context"
	"net/netip"
	"time"

	"github.com/gotfs/gotfs/dht"
)

// DHT policy: every public torrent looks itself up and announces itself on the DHT when it
// starts and every dhtAnnounceEvery after; peers' PORT messages and a torrent's "nodes" feed
// the routing table. Private torrents never touch the DHT (BEP 27).

const (
	dhtAnnounceEvery = 15 * time.Minute
	dhtRetry         = time.Minute
	dhtLookupTimeout = 2 * time.Minute
)

// addDHTNode hands a node learned from a peer to the DHT, off the caller's goroutine.
func (c *Client) addDHTNode(addr netip.AddrPort) {
	if c.dht == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.dht.AddNode(addr)
	}()
}

// DHT returns the client's DHT node, or nil when it runs without one.
func (c *Client) DHT() *dht.Server { return c.dht }

// dhtLoop looks the torrent up on the DHT and announces it, feeding the peers it finds to the
// torrent's candidates.
func (t *Torrent) dhtLoop() {
	defer t.wg.Done()
	for _, n := range t.mi.Nodes {
		if ap, err := netip.ParseAddrPort(n); err == nil {
			t.c.dht.AddNode(ap)
		}
	}
	retry := 2 * time.Second
	for {
		ctx, cancel := context.WithTimeout(t.ctx, dhtLookupTimeout)
		found := 0
		err := t.c.dht.Announce(ctx, t.hash, t.c.Port(), func(peers []netip.AddrPort) {
			found += len(peers)
			t.mu.Lock()
			t.addCandidatesLocked(peers)
			t.mu.Unlock()
		})
		cancel()
		wait := dhtAnnounceEvery
		if err != nil && t.ctx.Err() == nil {
			// Most often the routing table is still empty: try again soon, then less often.
			t.log.Debug("dht announce", "err", err, "retry_in", retry)
			wait, retry = retry, min(retry*2, dhtRetry)
		} else {
			t.log.Debug("dht announce done", "peers", found)
			retry = 2 * time.Second
		}
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
