package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gotfs/gotfs/p2p"
)

// Per-peer limits.
const (
	initialDepth    = 32   // requests in flight before the peer's rate is known
	minDepth        = 16   // never fewer requests in flight (unless snubbed)
	defaultMaxDepth = 250  // cap when the peer does not say (BEP 10 reqq)
	maxPeerDepth    = 1000 // cap whatever the peer says
	maxUploadQueue  = 256  // requests from one peer we hold at once
	floodLimit      = 4 * maxUploadQueue
	snubTimeout     = 60 * time.Second // no block for this long with requests out: snubbed
	keepAliveEvery  = 90 * time.Second
	uploadBatch     = 16 // blocks served per writer round
	// maxLateBlocks bounds lateBlocks: a peer that ignores our cancels can have at most its
	// queue (maxPeerDepth) and what is on the wire (another pipeline) of them in flight; a few
	// pipelines' worth leaves room for cancels that cross refilled requests.
	maxLateBlocks = 4 * maxPeerDepth
	// maxStrayBlocks is how many blocks that answer none of our requests (beyond lateBlocks)
	// a peer may send before it is dropped; they are thrown away. A peer that lost track of a
	// cancel is not worth dropping in the middle of a read (three libtorrent seeders were, at
	// once, for one such block each, cause not found); one that keeps sending them is flooding.
	maxStrayBlocks = 64
)

// errProtocol marks a peer that broke the protocol in a way p2p cannot see on its own.
var errProtocol = errors.New("protocol violation")

// peer is one connected peer of a torrent. The reader goroutine handles incoming messages; the
// writer goroutine sends requests, control messages and blocks.
type peer struct {
	t        *Torrent
	conn     *p2p.Conn
	addr     netip.AddrPort
	id       [20]byte
	incoming bool
	// transport is "tcp" or "utp" (transportOf).
	transport string
	wakeCh    chan struct{}

	// Guarded by t.mu.
	has            p2p.Bitfield
	hasCount       int
	amChoking      bool
	amInterested   bool
	peerChoking    bool
	peerInterested bool
	requests       []blockReq // our requests outstanding at the peer
	// lateBlocks is how many of our cancelled or released requests the peer may still answer
	// (each at most once): a block that arrives unrequested is taken while it is above zero,
	// and is a stray (strayBlocks) otherwise. A choke without the fast extension zeroes it
	// (the peer drops its queue); a reject of a request no longer outstanding lowers it.
	lateBlocks       int
	strayBlocks      int          // blocks that answered no request of ours (maxStrayBlocks)
	told             p2p.Bitfield // the pieces we told the peer we have (bitfield, HAVE)
	toldCount        int
	uploads          []blockReq // the peer's requests to us
	chokedRequests   int        // requests received while choked since the last unchoke, for flood detection
	overflowRequests int        // requests past a full queue since it last emptied, for flood detection
	out              []p2p.Message
	depth            int
	maxDepth         int
	lastBlock        time.Time
	snubbed          bool
	gotAny           bool // a message other than keep-alive arrived
	recvBytes        int64
	sentBytes        int64
	downRate         float64
	upRate           float64
	sendRate         float64   // downRate over the ticks in which the peer sent anything (deadline.go)
	rateSince        time.Time // when recvBytes started counting
	minRTT           time.Duration
	optimistic       bool
	unchokedAt       time.Time
	interestHint     int
	closed           bool
	// noPickGen is the torrent's pickGen when a background scan for this peer last found
	// nothing to start; while both are equal the scan would find nothing again (0: unknown).
	noPickGen uint64
	ext       extState
	fast      fastState
}

func (p *peer) wake() {
	select {
	case p.wakeCh <- struct{}{}:
	default:
	}
}

// addRequest records a request sent to p, counted in the client's in-flight budget.
func (p *peer) addRequest(r blockReq) {
	p.requests = append(p.requests, r)
	p.t.c.inflight.Add(1)
}

// removeRequestAt forgets request k of p (swapping the last one into its place).
func (p *peer) removeRequestAt(k int) {
	p.requests[k] = p.requests[len(p.requests)-1]
	p.requests = p.requests[:len(p.requests)-1]
	p.t.c.inflight.Add(-1)
}

func (p *peer) hasRequest(piece, block int) bool {
	for _, r := range p.requests {
		if int(r.piece) == piece && int(r.begin) == block*p2p.BlockSize {
			return true
		}
	}
	return false
}

// addPeer registers a connected peer and starts its goroutines; it closes the connection when
// the torrent does not want it.
func (t *Torrent) addPeer(conn *p2p.Conn, hs p2p.Handshake, incoming bool) {
	addr := conn.RemoteAddr()
	t.mu.Lock()
	reject := ""
	switch {
	case !t.acceptsIncoming():
		reject = "torrent closed"
	case t.banned[addr.Addr()]:
		reject = "banned"
	case len(t.peers) >= t.c.cfg.MaxPeers:
		reject = "peer limit"
	case hs.PeerID == t.c.peerID:
		reject = "connected to ourselves"
	}
	if reject == "" {
		for q := range t.peers {
			if q.id != hs.PeerID {
				continue
			}
			// Two connections to one peer: both ends keep the one opened by the side with the
			// smaller peer id, so that a simultaneous open leaves exactly one.
			if q.incoming == incoming || !t.keepNewDuplicate(incoming, hs.PeerID) {
				reject = "already connected"
			} else {
				q.conn.Close() // its reader removes it
			}
			break
		}
	}
	if reject != "" {
		t.mu.Unlock()
		t.log.Debug("peer refused", "peer", addr, "why", reject)
		conn.Close()
		return
	}
	p := &peer{
		t: t, conn: conn, addr: addr, id: hs.PeerID, incoming: incoming, transport: transportOf(conn),
		wakeCh:    make(chan struct{}, 1),
		has:       p2p.NewBitfield(t.info.NumPieces()),
		told:      p2p.NewBitfield(t.info.NumPieces()),
		amChoking: true, peerChoking: true,
		depth: initialDepth, maxDepth: defaultMaxDepth,
		lastBlock: time.Now(), rateSince: time.Now(),
	}
	t.peers[p] = struct{}{}
	t.stats.PeersSeen++
	if c := t.candidates[addr]; c != nil && !incoming {
		c.connected = true
		if p.transport == "utp" {
			c.utp = utpWorks
		}
	}
	p.fast.enabled = conn.FastEnabled()
	switch {
	case p.fast.enabled:
		t.sendFastHelloLocked(p)
	case t.store.VerifiedCount() > 0:
		p.out = append(p.out, p2p.Message{ID: p2p.MsgBitfield, Payload: t.tellBitfieldLocked(p)})
	}
	if hs.SupportsExtensions() {
		p.ext.enabled = true
		t.sendExtHandshakeLocked(p)
	}
	// BEP 32: a PORT message names the DHT of the connection's address family.
	if hs.SupportsDHT() && t.c.dht != nil && !t.info.Private {
		if da := t.c.dht.AddrFor(p.addr.Addr()); da.IsValid() {
			p.out = append(p.out, p2p.Port(da.Port()))
		}
	}
	t.wg.Add(2)
	t.mu.Unlock()
	t.log.Debug("peer connected", "peer", addr, "incoming", incoming, "transport", p.transport, "encryption", conn.Encryption())
	go p.readLoop()
	go p.writeLoop()
	p.wake()
}

// keepNewDuplicate decides between a new connection and an existing one to the same peer
// opened from the other side: the connection opened by the smaller peer id survives.
func (t *Torrent) keepNewDuplicate(newIncoming bool, remote [20]byte) bool {
	opener, other := t.c.peerID, remote // who opened the new connection, and the old one
	if newIncoming {
		opener, other = remote, t.c.peerID
	}
	return bytes.Compare(opener[:], other[:]) < 0
}

func (t *Torrent) bitfieldLocked() []byte {
	return t.store.VerifiedBitfield()
}

// tellBitfieldLocked returns our bitfield for p's hello and records it as told.
func (t *Torrent) tellBitfieldLocked(p *peer) []byte {
	bf := t.bitfieldLocked()
	copy(p.told, bf)
	p.toldCount = p2p.Bitfield(bf).Count()
	return bf
}

// tellHaveLocked tells p that we have piece i, unless it was told so already (the piece was
// evicted and fetched again) or the HAVE would make p count every piece while we miss one:
// with a bounded cache, pieces told and then evicted are still counted by the peer, and a peer
// that thinks both sides are seeders drops the connection (gotfs and libtorrent both do), in
// the middle of a read. The HAVEs held back are sent once every piece is verified.
func (t *Torrent) tellHaveLocked(p *peer, i int) {
	if p.told.Has(i) {
		return
	}
	if n := t.info.NumPieces(); p.toldCount == n-1 && t.store.VerifiedCount() < n {
		return
	}
	p.told.Set(i)
	p.toldCount++
	p.out = append(p.out, p2pHave(i))
	p.wake()
}

// removePeer forgets a peer whose connection ended.
func (t *Torrent) removePeer(p *peer, err error) {
	p.conn.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	delete(t.peers, p)
	t.releaseRequestsLocked(p)
	t.peerHasLocked(p, -1)
	if c := t.candidates[p.addr]; c != nil && !p.incoming {
		c.connected = false
		c.nextTry = time.Now().Add(backoff(c.failures))
	}
	t.log.Debug("peer disconnected", "peer", p.addr, "err", err)
	t.wakeAllLocked()
}

func (p *peer) readLoop() {
	t := p.t
	defer t.wg.Done()
	var err error
	// The blocks taken from one read of the connection, written together (storeBlocks).
	batch := make([]blockWrite, 0, maxBlockBatch)
	for {
		var m p2p.Message
		m, err = p.conn.ReadMessage()
		if err != nil {
			break
		}
		if m.KeepAlive {
			continue
		}
		limited := t.c.downLimit.limited()
		if m.ID == p2p.MsgPiece && limited {
			// The download cap: until the bucket allows this block, nothing more is read from
			// the connection, and TCP slows the peer down.
			if err = t.c.downLimit.wait(t.ctx, len(m.Payload)); err != nil {
				break
			}
		}
		t.mu.Lock()
		w, herr := t.handleMessageLocked(p, m)
		batch = batch[:0]
		if w.d != nil {
			batch = append(batch, w)
		}
		// The blocks that came in the same read are taken now too (their payloads stay valid
		// until the next ReadMessage), so that consecutive ones reach the file in one write.
		for m.ID == p2p.MsgPiece && !limited && herr == nil && len(batch) < maxBlockBatch {
			var ok bool
			if m, ok, herr = p.conn.NextBufferedPiece(); !ok {
				break
			}
			if w, herr = t.handleMessageLocked(p, m); w.d != nil {
				batch = append(batch, w)
			}
		}
		t.mu.Unlock()
		t.storeBlocks(batch) // outside the lock
		if herr != nil {
			err = herr
			break
		}
	}
	t.removePeer(p, err)
}

// handleMessageLocked applies one message from p. It returns a block to write (d != nil) when
// the message brought one that a piece in progress still needs.
func (t *Torrent) handleMessageLocked(p *peer, m p2p.Message) (blockWrite, error) {
	if m.ID == p2p.MsgExtended {
		// Extension messages may come before the bitfield (BEP 10 handshakes often do).
		return blockWrite{}, t.handleExtendedLocked(p, m)
	}
	first := !p.gotAny
	p.gotAny = true
	if m.ID != p2p.MsgPiece {
		// What the peer has or lets us have may have changed: its next pick scans again.
		p.noPickGen = 0
	}
	switch m.ID {
	case p2p.MsgChoke:
		p.peerChoking = true
		t.releaseChokedRequestsLocked(p)
		t.wakeAllLocked() // others may take over the released blocks
	case p2p.MsgUnchoke:
		p.peerChoking = false
		p.wake()
	case p2p.MsgInterested:
		p.peerInterested = true
		t.maybeUnchokeNewLocked(p)
	case p2p.MsgNotInterested:
		// Pending requests stay: BEP 3 ties them to choking, not interest.
		p.peerInterested = false
	case p2p.MsgHave:
		i := int(m.Index)
		if !p.has.Has(i) {
			p.has.Set(i)
			p.hasCount++
			t.pt.peerHas(i, 1)
			if !p.amInterested && t.pt.wants(i) {
				p.wake()
			}
			return blockWrite{}, t.checkBothSeedersLocked(p)
		}
	case p2p.MsgBitfield:
		// A later bitfield replaces what the peer had: aria2c sends none while it has no
		// piece, then a bitfield instead of "have" after the first piece it gets.
		if !first {
			t.peerHasLocked(p, -1)
		}
		copy(p.has, m.Payload)
		p.hasCount = t.peerHasLocked(p, 1)
		p.wake()
		return blockWrite{}, t.checkBothSeedersLocked(p)
	case p2p.MsgRequest:
		return blockWrite{}, t.handleRequestLocked(p, m)
	case p2p.MsgCancel:
		for k, r := range p.uploads {
			if r.piece == m.Index && r.begin == m.Begin && r.length == m.Length {
				p.uploads = append(p.uploads[:k], p.uploads[k+1:]...)
				break
			}
		}
	case p2p.MsgPiece:
		return t.handleBlockLocked(p, m)
	case p2p.MsgHaveAll, p2p.MsgHaveNone, p2p.MsgRejectRequest, p2p.MsgAllowedFast, p2p.MsgSuggestPiece:
		return blockWrite{}, t.handleFastLocked(p, m, first)
	case p2p.MsgPort:
		if t.c.dht != nil && !t.info.Private && m.Port != 0 {
			t.c.addDHTNode(netip.AddrPortFrom(p.addr.Addr(), m.Port))
		}
	}
	// Unknown messages need nothing.
	return blockWrite{}, nil
}

// errBothSeeders ends a connection between two peers that both have every piece.
var errBothSeeders = errors.New("both sides are seeders")

// checkBothSeedersLocked ends the connection when p and we both have every piece: there is
// nothing to trade.
func (t *Torrent) checkBothSeedersLocked(p *peer) error {
	if n := t.info.NumPieces(); n > 0 && t.store.VerifiedCount() == n && p.hasCount == n {
		return errBothSeeders
	}
	return nil
}

func (t *Torrent) handleRequestLocked(p *peer, m p2p.Message) error {
	if t.c.cfg.NoUpload || (p.amChoking && !p.fast.out[m.Index]) {
		// BEP 3: requests while choked are dropped; BEP 6: rejected. A peer that keeps
		// asking regardless is flooding.
		if p.chokedRequests++; p.chokedRequests > floodLimit {
			return fmt.Errorf("%w: %d requests while choked", errProtocol, p.chokedRequests)
		}
		p.rejectLocked(m)
		return nil
	}
	if len(p.uploads) >= maxUploadQueue {
		// We announced reqq = maxUploadQueue; a peer that keeps asking past it is flooding.
		if p.overflowRequests++; p.overflowRequests > floodLimit {
			return fmt.Errorf("%w: %d requests past a full queue", errProtocol, p.overflowRequests)
		}
		p.rejectLocked(m)
		return nil
	}
	if int(m.Index) >= t.info.NumPieces() || !t.store.Verified(int(m.Index)) {
		p.rejectLocked(m)
		return nil
	}
	p.uploads = append(p.uploads, blockReq{piece: m.Index, begin: m.Begin, length: m.Length})
	p.wake()
	return nil
}

// handleBlockLocked accounts for a received block and returns it for writing when its piece
// still needs it.
func (t *Torrent) handleBlockLocked(p *peer, m p2p.Message) (blockWrite, error) {
	idx, begin, n := int(m.Index), int(m.Begin), len(m.Payload)
	found := -1
	for k, r := range p.requests {
		if r.piece == m.Index && r.begin == m.Begin {
			found = k
			break
		}
	}
	var r blockReq
	now := time.Now()
	if found < 0 {
		// A block we cancelled, or released when the peer choked us, may still arrive (the
		// messages crossed); use it if the piece still needs it.
		if !t.isBlockLocked(idx, begin) {
			return blockWrite{}, fmt.Errorf("%w: block %d+%d is not a block of the torrent", errProtocol, idx, begin)
		}
		r = blockReq{piece: m.Index, begin: m.Begin, length: uint32(t.blockLen(idx, begin/p2p.BlockSize))}
		if uint32(n) != r.length {
			return blockWrite{}, fmt.Errorf("%w: block %d+%d has %d bytes, want %d", errProtocol, idx, begin, n, r.length)
		}
		if !p.takeLateBlock() {
			// Beyond every request we withdrew: a few are wasted bytes, more are a flood.
			t.stats.Wasted += int64(n)
			if p.strayBlocks++; p.strayBlocks > maxStrayBlocks {
				return blockWrite{}, fmt.Errorf("%w: %d blocks that were never requested", errProtocol, p.strayBlocks)
			}
			if p.strayBlocks == 1 {
				t.log.Debug("block never requested", "peer", p.addr, "piece", idx, "begin", begin)
			}
			return blockWrite{}, nil
		}
	} else {
		r = p.requests[found]
		if uint32(n) != r.length {
			return blockWrite{}, fmt.Errorf("%w: block %d+%d has %d bytes, asked %d", errProtocol, idx, begin, n, r.length)
		}
		p.removeRequestAt(found)
		rtt := now.Sub(r.sent)
		if p.minRTT == 0 || rtt < p.minRTT {
			p.minRTT = rtt
		}
		if t.blockRTT == 0 {
			t.blockRTT = rtt
		} else {
			t.blockRTT += (rtt - t.blockRTT) / 8
		}
	}
	p.lastBlock = now
	p.snubbed = false
	p.recvBytes += int64(n)
	p.wake()

	d := t.downloads[idx]
	b := begin / p2p.BlockSize
	if d == nil || d.got[b] {
		t.stats.Wasted += int64(n)
		if found >= 0 && d != nil && d.reqs[b] > 0 {
			d.reqs[b]--
		}
		return blockWrite{}, nil
	}
	if found >= 0 {
		d.reqs[b]--
	}
	addContributor(d, p)
	return t.acceptBlockLocked(d, b, m.Payload, p), nil
}

// isBlockLocked reports whether begin is the start of a block of piece idx.
func (t *Torrent) isBlockLocked(idx, begin int) bool {
	return idx >= 0 && idx < t.info.NumPieces() && begin >= 0 && begin%p2p.BlockSize == 0 &&
		int64(begin) < t.info.PieceSize(idx)
}

// acceptBlockLocked takes block b of d, which d still needs, from a peer or a web seed
// (from is nil), and returns it for storeBlocks. The block counts as received now, so that no
// copy of it from another source is written too (a failed write gives it back), and the
// requests other peers still hold for it are cancelled.
func (t *Torrent) acceptBlockLocked(d *pieceDownload, b int, data []byte, from *peer) blockWrite {
	t.takeBlockLocked(d, b, len(data), from)
	return t.blockWriteLocked(d, b, data)
}

// takeBlockLocked marks block b of d received (n bytes), so that no copy of it from another
// source is written too, and cancels the requests other peers still hold for it.
func (t *Torrent) takeBlockLocked(d *pieceDownload, b, n int, from *peer) {
	d.got[b] = true
	d.nGot++
	d.writing++
	if d.reqs[b] > 0 {
		r := blockReq{piece: uint32(d.index), begin: uint32(b * p2p.BlockSize), length: uint32(n)}
		t.cancelDuplicatesLocked(from, r)
		d.reqs[b] = 0
	}
}

// blockWriteLocked returns the write of data, taken blocks of d from block b on; when b is the
// next block in order to hash, the writer hashes them too, alone.
func (t *Torrent) blockWriteLocked(d *pieceDownload, b int, data []byte) blockWrite {
	hash := b == d.hashed && !d.hashing && !d.hashBroken
	d.hashing = d.hashing || hash
	return blockWrite{d: d, piece: d.index, begin: b * p2p.BlockSize, data: data, hash: hash}
}

// blockWrite is a received block on its way to the cache file (Storage.WriteBlock); the zero
// value (d == nil) is no block. It is passed by value: nothing is allocated per block.
type blockWrite struct {
	d     *pieceDownload
	piece int
	begin int
	data  []byte // aliases the connection's read buffer: valid until its next message
	hash  bool   // the writer feeds data into d.hash after a successful write
}

func addContributor(d *pieceDownload, p *peer) {
	for _, q := range d.contrib {
		if q == p {
			return
		}
	}
	d.contrib = append(d.contrib, p)
}

// cancelDuplicatesLocked cancels the requests for r that other peers still hold (endgame).
func (t *Torrent) cancelDuplicatesLocked(winner *peer, r blockReq) {
	for q := range t.peers {
		if q == winner {
			continue
		}
		for k, qr := range q.requests {
			if qr.piece == r.piece && qr.begin == r.begin {
				q.removeRequestAt(k)
				q.requestWithdrawn()
				q.out = append(q.out, p2p.Message{ID: p2p.MsgCancel, Index: qr.piece, Begin: qr.begin, Length: qr.length})
				q.wake()
				break
			}
		}
	}
}

// requestWithdrawn notes that one of our requests at p was cancelled or released while the
// peer may still answer it.
func (p *peer) requestWithdrawn() {
	p.lateBlocks = min(p.lateBlocks+1, maxLateBlocks)
}

// takeLateBlock reports whether p may still send a block we no longer ask for, and counts one.
func (p *peer) takeLateBlock() bool {
	if p.lateBlocks == 0 {
		return false
	}
	p.lateBlocks--
	return true
}

// interestedInLocked reports whether p has a piece we want, starting the scan at a hint. While
// requests are outstanding at p we stay interested (a peer may drop requests of an
// uninterested peer).
func (t *Torrent) interestedInLocked(p *peer) bool {
	n := t.info.NumPieces()
	if len(p.requests) > 0 {
		return true
	}
	if n == 0 || p.hasCount == 0 {
		return false
	}
	if !t.pt.backgroundWork() {
		// Only pieces the readers claim can be wanted: look at those, not at every piece.
		for _, i := range t.pt.urgent {
			if p.has.Has(i) && t.pt.wants(i) {
				return true
			}
		}
		return false
	}
	for k := range n {
		i := (p.interestHint + k) % n
		if p.has.Has(i) && t.pt.wants(i) {
			p.interestHint = i
			return true
		}
	}
	return false
}

// prepareLocked collects what the writer should send now.
func (p *peer) prepareLocked(msgs []p2p.Message, ups []blockReq) ([]p2p.Message, []blockReq) {
	t := p.t
	if want := t.interestedInLocked(p); want != p.amInterested {
		p.amInterested = want
		id := p2p.MsgNotInterested
		if want {
			id = p2p.MsgInterested
		}
		p.out = append(p.out, p2p.Message{ID: id})
	}
	t.fillRequestsLocked(p)
	msgs = append(msgs, p.out...)
	clear(p.out)
	p.out = p.out[:0]
	if len(p.uploads) == 0 {
		p.overflowRequests = 0
	}
	if !p.amChoking || p.fast.enabled {
		k := min(len(p.uploads), uploadBatch)
		for _, u := range p.uploads[:k] {
			// A queued request whose piece was evicted since is rejected; the others are
			// pinned until sent (unpinUploadsLocked), so no eviction punches them meanwhile.
			if !t.store.Verified(int(u.piece)) {
				p.rejectLocked(p2p.Message{ID: p2p.MsgRequest, Index: u.piece, Begin: u.begin, Length: u.length})
				continue
			}
			t.pt.pin(int(u.piece), int(u.piece)+1)
			ups = append(ups, u)
		}
		p.uploads = append(p.uploads[:0], p.uploads[k:]...)
		msgs = append(msgs, p.out...) // the rejections
		clear(p.out)
		p.out = p.out[:0]
	}
	return msgs, ups
}

// unpinUploadsLocked releases the pins prepareLocked took for uploads.
func (t *Torrent) unpinUploadsLocked(ups []blockReq) {
	for _, u := range ups {
		t.pt.unpin(int(u.piece), int(u.piece)+1)
	}
}

func (p *peer) writeLoop() {
	t := p.t
	defer t.wg.Done()
	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	var msgs []p2p.Message
	var ups []blockReq
	block := make([]byte, p2p.BlockSize)
	for {
		select {
		case <-p.wakeCh:
		case <-keepAlive.C:
			msgs = append(msgs, p2p.Message{KeepAlive: true})
		case <-t.ctx.Done():
			p.conn.Close()
			return
		}
		for {
			t.mu.Lock()
			if p.closed {
				t.mu.Unlock()
				return
			}
			msgs, ups = p.prepareLocked(msgs, ups)
			t.mu.Unlock()
			if len(msgs) == 0 && len(ups) == 0 {
				break
			}
			err := p.send(msgs, ups, block)
			t.mu.Lock()
			t.unpinUploadsLocked(ups)
			t.mu.Unlock()
			if err != nil {
				p.conn.Close() // the reader sees the error and removes the peer
				return
			}
			more := len(ups) > 0 // an upload batch may have left more queued
			clear(msgs)
			msgs, ups = msgs[:0], ups[:0]
			if !more {
				break
			}
		}
	}
}

func (p *peer) send(msgs []p2p.Message, ups []blockReq, block []byte) error {
	for _, m := range msgs {
		if err := p.conn.WriteMessage(m); err != nil {
			return err
		}
	}
	if len(msgs) > 0 && len(ups) > 0 && p.t.c.upLimit.limit.Load() > 0 {
		// Our own requests and control messages must not wait behind capped blocks.
		if err := p.conn.Flush(); err != nil {
			return err
		}
	}
	var sent int64
	for _, u := range ups {
		if err := p.t.c.upLimit.wait(p.t.ctx, int(u.length)); err != nil {
			return err
		}
		buf := block[:u.length]
		if err := p.t.store.ReadBlock(int(u.piece), int(u.begin), buf); err != nil {
			return fmt.Errorf("read block %d+%d to upload: %w", u.piece, u.begin, err)
		}
		if err := p.conn.WriteMessage(p2p.Message{ID: p2p.MsgPiece, Index: u.piece, Begin: u.begin, Payload: buf}); err != nil {
			return err
		}
		sent += int64(u.length)
	}
	if err := p.conn.Flush(); err != nil {
		return err
	}
	if sent > 0 {
		p.t.mu.Lock()
		p.sentBytes += sent
		p.t.stats.Uploaded += sent
		p.t.mu.Unlock()
	}
	return nil
}

func backoff(failures int) time.Duration {
	d := 5 * time.Second << min(failures, 6)
	return min(d, 5*time.Minute)
}

// peerHasLocked adds delta to the availability of every piece p has (its bitfield arrived:
// +1; it left or sent a new bitfield: -1) and returns how many pieces p has.
func (t *Torrent) peerHasLocked(p *peer, delta int) int {
	n := 0
	for i := range t.pt.len() {
		if p.has.Has(i) {
			t.pt.peerHas(i, delta)
			n++
		}
	}
	return n
}
