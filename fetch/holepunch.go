package fetch

// Hole punching (BEP 55, ut_holepunch over uTP). Inputs weighed: whether the client has a uTP
// socket for the address's family (the extension is offered only with one, and not for private
// torrents); which connected peers support ut_holepunch; which of them told us of a candidate
// by PEX (its introducers); for a relay, whether the target is connected to us and supports
// the extension; how many holepunch messages a peer sent that made us act (holepunchLimit).
// Re-check these when making changes.
//
// Initiator: a candidate we failed to reach (uTP, then TCP) and that an introducer knows gets
// a rendezvous sent to that introducer. Relay: a rendezvous naming a peer connected to us that
// supports the extension makes us send connect messages to both; otherwise an error with the
// BEP's code. Both ends of a connect message dial the other over uTP at once: each one's SYN
// opens its own NAT for the other's (simultaneous open); addPeer keeps one connection when
// both get through.

import (
	"net/netip"
	"time"

	"github.com/gotfs/gotfs/p2p"
)

const (
	maxIntroducers = 4 // introducers remembered per candidate
	// A peer's holepunch messages that make us send or dial: at most punchBurst, refilled at
	// one per punchRefill.
	punchBurst  = 10
	punchRefill = 6 * time.Second
)

// holepunchLimit is a token bucket over the holepunch messages of one peer that cost us a
// message to another peer or a dial, so that no peer can make us a traffic source.
type holepunchLimit struct {
	used int
	at   time.Time
}

func (l *holepunchLimit) allow(now time.Time) bool {
	if l.at.IsZero() {
		l.at = now
	}
	if n := now.Sub(l.at) / punchRefill; n > 0 {
		l.used = max(0, l.used-int(n))
		l.at = l.at.Add(n * punchRefill)
	}
	if l.used >= punchBurst {
		return false
	}
	l.used++
	return true
}

// addIntroducer remembers that p told us of the candidate, if p can relay a hole punch.
func (c *candidate) addIntroducer(p *peer) {
	if p.ext.holepunchID == 0 {
		return
	}
	kept := c.introducers[:0]
	for _, q := range c.introducers {
		if q != p && !q.closed {
			kept = append(kept, q)
		}
	}
	c.introducers = append(kept, p)
	if len(c.introducers) > maxIntroducers {
		c.introducers = c.introducers[len(c.introducers)-maxIntroducers:]
	}
}

// holepunchLocked asks an introducer of the candidate at addr, which we just failed to reach,
// to relay a hole punch. It reports whether it asked.
func (t *Torrent) holepunchLocked(addr netip.AddrPort, c *candidate) bool {
	if t.info.Private || !t.c.utpFor(addr) {
		return false
	}
	for i := len(c.introducers) - 1; i >= 0; i-- {
		r := c.introducers[i]
		if r.closed || r.ext.holepunchID == 0 {
			continue
		}
		t.log.Debug("asking a peer to relay a hole punch", "relay", r.addr, "target", addr)
		t.sendHolepunchLocked(r, p2p.HolepunchMsg{Type: p2p.HolepunchRendezvous, Addr: addr})
		return true
	}
	return false
}

// sendHolepunchLocked queues a ut_holepunch message to p.
func (t *Torrent) sendHolepunchLocked(p *peer, m p2p.HolepunchMsg) {
	b, err := m.Encode()
	if err != nil {
		t.log.Debug("encode ut_holepunch", "err", err)
		return
	}
	p.out = append(p.out, p2p.Extended(p.ext.holepunchID, b))
	p.wake()
}

// punchAddr is where a peer can be reached by a hole punch: over uTP, the address its packets
// come from (its uTP socket, as its NAT maps it); else the address others dial it at.
func (p *peer) punchAddr() (netip.AddrPort, bool) {
	if p.transport == "utp" {
		return p.addr, true
	}
	return p.dialableAddr()
}

// handleHolepunchLocked handles a ut_holepunch message from p.
func (t *Torrent) handleHolepunchLocked(p *peer, payload []byte) error {
	m, err := p2p.ParseHolepunchMsg(payload)
	if err != nil {
		return err
	}
	now := time.Now()
	switch m.Type {
	case p2p.HolepunchRendezvous:
		if p.ext.holepunchID == 0 || !p.ext.punch.allow(now) {
			return nil
		}
		t.relayLocked(p, m.Addr)
	case p2p.HolepunchConnect:
		if !p.ext.punch.allow(now) {
			return nil
		}
		t.punchLocked(m.Addr)
	case p2p.HolepunchError:
		t.log.Debug("hole punch refused by the relay", "relay", p.addr, "target", m.Addr, "err", m.Err)
		if c := t.candidates[m.Addr]; c != nil {
			kept := c.introducers[:0]
			for _, q := range c.introducers {
				if q != p {
					kept = append(kept, q)
				}
			}
			c.introducers = kept
		}
	}
	return nil
}

// relayLocked answers initiator's rendezvous for target: connect messages to both, or an
// error message to the initiator.
func (t *Torrent) relayLocked(initiator *peer, target netip.AddrPort) {
	fail := func(code p2p.HolepunchErr) {
		t.log.Debug("hole punch not relayed", "initiator", initiator.addr, "target", target, "err", code)
		t.sendHolepunchLocked(initiator, p2p.HolepunchMsg{Type: p2p.HolepunchError, Addr: target, Err: code})
	}
	if !target.IsValid() || target.Port() == 0 || target.Addr().IsUnspecified() || target.Addr().IsMulticast() {
		fail(p2p.HolepunchNoSuchPeer)
		return
	}
	if t.c.isSelf(target) {
		fail(p2p.HolepunchNoSelf)
		return
	}
	var q *peer
	for o := range t.peers {
		if o == initiator || o.closed {
			continue
		}
		if d, ok := o.dialableAddr(); o.addr == target || ok && d == target {
			q = o
			break
		}
	}
	switch {
	case q == nil:
		fail(p2p.HolepunchNotConnected)
		return
	case q.ext.holepunchID == 0:
		fail(p2p.HolepunchNoSupport)
		return
	}
	from, ok := initiator.punchAddr()
	to, ok2 := q.punchAddr()
	if !ok || !ok2 {
		fail(p2p.HolepunchNoSuchPeer)
		return
	}
	t.log.Debug("relaying a hole punch", "initiator", from, "target", to)
	t.sendHolepunchLocked(q, p2p.HolepunchMsg{Type: p2p.HolepunchConnect, Addr: from})
	t.sendHolepunchLocked(initiator, p2p.HolepunchMsg{Type: p2p.HolepunchConnect, Addr: to})
}

// punchLocked dials addr over uTP at once, as a connect message asks (unless we are connected
// to it or dialling it already, it is banned or ourselves, or the peer limit is reached).
func (t *Torrent) punchLocked(addr netip.AddrPort) {
	if !addr.IsValid() || addr.Port() == 0 || !t.c.utpFor(addr) || t.banned[addr.Addr()] || t.c.isSelf(addr) ||
		t.connectedToLocked(addr) || len(t.peers)+t.dialing >= t.c.cfg.MaxPeers {
		return
	}
	if _, known := t.candidates[addr]; !known && len(t.candidates) >= maxCandidates {
		return
	}
	c := t.candidateLocked(addr)
	if c.connected {
		return // being dialled now
	}
	if c.utp == utpFails {
		c.utp = utpAdvertised // it speaks ut_holepunch, hence uTP: it was unreachable
	}
	t.log.Debug("hole punch: dialling", "peer", addr)
	t.startDialLocked(addr, c)
}
