package fetch

import (
	"net/netip"

	"github.com/gotfs/gotfs/torrentfile"
)

// Local service discovery (BEP 14) policy: only public torrents are announced on the local
// network or take peers found there; a private torrent's peers come from its trackers alone
// (BEP 27). The lsd package does the announcing and listening.

// LocalTorrents returns the info hashes of the running public torrents, the ones local
// service discovery may announce.
func (c *Client) LocalTorrents() [][20]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][20]byte, 0, len(c.torrents))
	for h, t := range c.torrents {
		if !t.info.Private {
			out = append(out, h)
		}
	}
	return out
}

// AddLocalPeer hands a peer found on the local network to the torrent with the given info
// hash, if it runs and is public, and reports whether it was taken.
func (c *Client) AddLocalPeer(hash [20]byte, addr netip.AddrPort) bool {
	c.mu.Lock()
	t := c.torrents[torrentfile.Hash(hash)]
	c.mu.Unlock()
	if t == nil || t.info.Private {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.closed:
		return false
	default:
	}
	t.log.Debug("local peer found", "peer", addr)
	t.addCandidatesLocked([]netip.AddrPort{addr})
	return true
}
