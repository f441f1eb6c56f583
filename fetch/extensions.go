package fetch

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gotfs/gotfs/p2p"
)

// Extension protocol (BEP 10) and what rides on it: ut_metadata (BEP 9) served to peers that
// came by magnet link, and ut_pex (BEP 11) peer exchange.
//
// Inputs weighed: the torrent is private (no PEX, no DHT: BEP 27); the peer's handshake set the
// extension bit; the peer's extension handshake ("m" ids, reqq, listen port p); for PEX, which
// connected peers have an address others can dial (outgoing ones, or incoming ones that told us
// their listen port), and what each peer was already told; PEX flags: a seed (0x02) is no use to
// us when we seed, and we flag seeds and the peers we reached ourselves (0x10) to others.
// Re-check these when making changes.

const (
	clientVersion = "gotfs 0.1"
	pexEvery      = time.Minute
	maxPexSend    = 50   // peers per list in one PEX message (BEP 11 suggests at most 50)
	maxCandidates = 1000 // peers remembered per torrent, from every source
)

// extState is what a peer told us in its extension handshake, and what we told it by PEX.
type extState struct {
	enabled     bool // both sides set the BEP 10 bit
	metadataID  uint8
	pexID       uint8
	holepunchID uint8 // ut_holepunch (BEP 55)
	listenPort  uint16
	pexSent     map[netip.AddrPort]bool
	pexAt       time.Time
	punch       holepunchLimit // ut_holepunch messages from the peer that made us act
}

// sendExtHandshakeLocked queues our extension handshake to p.
func (t *Torrent) sendExtHandshakeLocked(p *peer) {
	h := p2p.OurExtHandshake(len(t.mi.InfoBytes), int(t.c.Port()), p.addr.Addr(), maxUploadQueue, clientVersion)
	if t.info.Private {
		delete(h.M, p2p.ExtPexName)
	} else if t.c.lis.utp != nil {
		h.M[p2p.ExtHolepunchName] = int(p2p.LocalHolepunchID)
	}
	b, err := h.Encode()
	if err != nil {
		t.log.Error("encode extension handshake", "err", err)
		return
	}
	p.out = append(p.out, p2p.Extended(p2p.ExtHandshakeID, b))
}

// handleExtendedLocked handles one extended message from p.
func (t *Torrent) handleExtendedLocked(p *peer, m p2p.Message) error {
	if !p.ext.enabled {
		return fmt.Errorf("%w: extended message without the extension bit", errProtocol)
	}
	switch m.ExtendedID {
	case p2p.ExtHandshakeID:
		h, err := p2p.ParseExtHandshake(m.Payload)
		if err != nil {
			return err
		}
		p.ext.metadataID, _ = h.ExtID(p2p.ExtMetadataName)
		p.ext.pexID, _ = h.ExtID(p2p.ExtPexName)
		p.ext.holepunchID, _ = h.ExtID(p2p.ExtHolepunchName)
		if h.P > 0 && h.P < 1<<16 {
			p.ext.listenPort = uint16(h.P)
		}
		if h.Reqq > 0 {
			p.maxDepth = max(minDepth, min(h.Reqq, maxPeerDepth))
		}
		if ip, ok := netip.AddrFromSlice(h.YourIP); ok && t.c.dht != nil {
			// What the peer sees as our address is one vote for the DHT's node id (BEP 42).
			t.c.dht.VoteExternalAddr(p.addr.Addr(), ip)
		}
	case p2p.LocalMetadataID:
		return t.handleMetadataLocked(p, m.Payload)
	case p2p.LocalHolepunchID:
		if t.info.Private || t.c.lis.utp == nil {
			return nil // not offered
		}
		return t.handleHolepunchLocked(p, m.Payload)
	case p2p.LocalPexID:
		if t.info.Private {
			return nil
		}
		msg, err := p2p.ParsePexMsg(m.Payload)
		if err != nil {
			return err
		}
		seeding := t.store.VerifiedCount() == t.info.NumPieces()
		addrs := make([]netip.AddrPort, 0, len(msg.Added))
		for _, a := range msg.Added {
			if seeding && a.Flags&p2p.PexSeed != 0 {
				continue // a seed has nothing for a seed
			}
			if c := t.candidateLocked(a.Addr); c != nil {
				if a.Flags&p2p.PexUTP != 0 && c.utp == utpUnknown {
					c.utp = utpAdvertised
				}
				c.addIntroducer(p)
			}
			addrs = append(addrs, a.Addr)
		}
		t.addCandidatesLocked(addrs)
	}
	return nil // unknown extensions are ignored
}

// handleMetadataLocked answers ut_metadata requests with pieces of our info dictionary.
func (t *Torrent) handleMetadataLocked(p *peer, payload []byte) error {
	msg, err := p2p.ParseMetadataMsg(payload)
	if errors.Is(err, p2p.ErrUnknownMetadataMsgType) {
		return nil // BEP 9: ignore
	}
	if err != nil {
		return err
	}
	if msg.Type != p2p.MetadataRequest || p.ext.metadataID == 0 {
		return nil
	}
	reply := p2p.MetadataMsg{Type: p2p.MetadataReject, Piece: msg.Piece}
	if data, err := p2p.MetadataPiece(t.mi.InfoBytes, msg.Piece); err == nil {
		reply = p2p.MetadataMsg{Type: p2p.MetadataData, Piece: msg.Piece, TotalSize: len(t.mi.InfoBytes), Data: data}
	}
	b, err := reply.Encode()
	if err != nil {
		return fmt.Errorf("encode metadata reply: %w", err)
	}
	p.out = append(p.out, p2p.Extended(p.ext.metadataID, b))
	p.wake()
	return nil
}

// dialableAddrLocked returns the address other peers can reach p at, if known.
func (p *peer) dialableAddr() (netip.AddrPort, bool) {
	if !p.incoming {
		return p.addr, true
	}
	if p.ext.listenPort != 0 {
		return netip.AddrPortFrom(p.addr.Addr(), p.ext.listenPort), true
	}
	return netip.AddrPort{}, false
}

// sendPexLocked tells every PEX-capable peer, at most once a minute, which peers joined and
// left since it was last told.
func (t *Torrent) sendPexLocked(now time.Time) {
	if t.info.Private {
		return
	}
	current := map[netip.AddrPort]byte{} // address → PEX flags
	for q := range t.peers {
		if a, ok := q.dialableAddr(); ok {
			var flags byte
			if q.hasCount == t.info.NumPieces() {
				flags |= p2p.PexSeed
			}
			if !q.incoming {
				flags |= p2p.PexReachable // we reached it
			}
			if q.transport == "utp" {
				flags |= p2p.PexUTP
			}
			if q.ext.holepunchID != 0 {
				flags |= p2p.PexHolepunch
			}
			current[a] = flags
		}
	}
	for p := range t.peers {
		if p.ext.pexID == 0 || now.Sub(p.ext.pexAt) < pexEvery {
			continue
		}
		self, _ := p.dialableAddr()
		var msg p2p.PexMsg
		for a, flags := range current {
			if a != self && !p.ext.pexSent[a] && len(msg.Added) < maxPexSend {
				msg.Added = append(msg.Added, p2p.PexPeer{Addr: a, Flags: flags})
			}
		}
		for a := range p.ext.pexSent {
			if _, still := current[a]; !still && len(msg.Dropped) < maxPexSend {
				msg.Dropped = append(msg.Dropped, p2p.PexPeer{Addr: a})
			}
		}
		p.ext.pexAt = now
		if len(msg.Added) == 0 && len(msg.Dropped) == 0 {
			continue
		}
		b, err := msg.Encode()
		if err != nil {
			t.log.Debug("encode pex", "err", err)
			continue
		}
		if p.ext.pexSent == nil {
			p.ext.pexSent = map[netip.AddrPort]bool{}
		}
		for _, a := range msg.Added {
			p.ext.pexSent[a.Addr] = true
		}
		for _, a := range msg.Dropped {
			delete(p.ext.pexSent, a.Addr)
		}
		p.out = append(p.out, p2p.Extended(p.ext.pexID, b))
		p.wake()
	}
}
