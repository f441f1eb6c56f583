package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/tracker"
)

// Fetching a magnet link's metadata (BEP 9).
//
// Inputs weighed: peers from the link's x.pe, its trackers (all of them, at once) and the DHT;
// a peer is useful only with the extension bit, ut_metadata and a metadata_size in range; the
// first size a peer announces sets the size (a peer announcing another is dropped); each piece
// is asked of one peer at a time and asked again elsewhere after metadataPieceTimeout or a
// reject; assembled metadata that does not hash to the info hash drops every peer that sent a
// piece of it and starts over. Re-check these when making changes.

const (
	metadataDialers      = 16
	metadataPieceTimeout = 5 * time.Second
	metadataRetryPeers   = 5 * time.Second
)

// MetadataOptions tunes FetchMetadata.
type MetadataOptions struct {
	// Peers are tried besides the link's own x.pe peers, its trackers and the DHT.
	Peers []netip.AddrPort
	// NoTrackers skips the link's trackers.
	NoTrackers bool
	// OnPeers, when not nil, is told how many distinct peers were found so far.
	OnPeers func(n int)
}

// ErrNoMetadata is returned when the context ends before any peer gave the metadata.
var ErrNoMetadata = errors.New("no peer sent the torrent's metadata")

// metadataFetch is one FetchMetadata call's shared state.
type metadataFetch struct {
	c    *Client
	hash torrentfile.Hash
	ctx  context.Context // ends when FetchMetadata returns

	mu        sync.Mutex
	seen      map[netip.AddrPort]bool
	queue     []netip.AddrPort
	md        *p2p.Metadata
	asked     map[int]time.Time      // piece → when it was last requested
	senders   map[int]netip.AddrPort // piece → who sent it
	bad       map[netip.Addr]bool
	result    []byte
	done      chan struct{}
	newPeers  chan struct{}
	onPeers   func(int)
	lastError error
	tries     map[netip.AddrPort]int // failed attempts per peer
}

// metadataPeerTries is how often a peer that failed (refused, reset, timed out) is tried.
const metadataPeerTries = 3

// retryLater queues a failed peer again after a back-off, a few times: a refusal may be
// passing (a client that still counts our previous connection, say). Liars are not retried.
func (f *metadataFetch) retryLater(ap netip.AddrPort, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastError = err
	f.tries[ap]++
	n := f.tries[ap]
	if n >= metadataPeerTries || f.bad[ap.Addr()] || f.result != nil {
		return
	}
	time.AfterFunc(metadataRetryPeers<<(n-1), func() {
		f.mu.Lock()
		f.queue = append(f.queue, ap)
		f.mu.Unlock()
		select {
		case f.newPeers <- struct{}{}:
		default:
		}
	})
}

// serveIncoming asks a peer that dialed us for this torrent for the metadata.
func (f *metadataFetch) serveIncoming(conn *p2p.Conn, hs p2p.Handshake) {
	if err := f.talk(f.ctx, conn, hs, conn.RemoteAddr()); err != nil {
		f.c.log.Debug("metadata from incoming peer", "peer", conn.RemoteAddr(), "err", err)
	}
}

// FetchMetadata finds peers for a magnet link and downloads its info dictionary from them
// (BEP 9), returning a Metainfo with the link's trackers and web seeds.
func (c *Client) FetchMetadata(ctx context.Context, m *torrentfile.Magnet, opts MetadataOptions) (*torrentfile.Metainfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &metadataFetch{
		c: c, hash: m.InfoHash, ctx: ctx, tries: map[netip.AddrPort]int{}, seen: map[netip.AddrPort]bool{}, asked: map[int]time.Time{},
		senders: map[int]netip.AddrPort{}, bad: map[netip.Addr]bool{}, done: make(chan struct{}),
		newPeers: make(chan struct{}, 1), onPeers: opts.OnPeers,
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Peers that dial us for this torrent meanwhile are handed to the fetch (handleIncoming).
	c.mu.Lock()
	c.fetches[m.InfoHash] = f
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.fetches[m.InfoHash] == f {
			delete(c.fetches, m.InfoHash)
		}
		c.mu.Unlock()
	}()
	f.addPeers(opts.Peers)
	for _, s := range m.Peers {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			f.addPeers([]netip.AddrPort{ap})
		}
	}
	if !opts.NoTrackers {
		for _, u := range m.Trackers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.askTracker(ctx, u)
			}()
		}
	}
	if c.dht != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Look again now and then: the routing table may still be filling, and peers
			// may announce themselves later.
			wait := 50 * time.Millisecond // the routing table may be filling right now
			for {
				err := c.dht.GetPeers(ctx, m.InfoHash, f.addPeers)
				if err != nil && ctx.Err() == nil {
					c.log.Debug("dht lookup for metadata", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-f.done:
					return
				case <-time.After(wait):
				}
				wait = min(wait*2, 30*time.Second)
			}
		}()
	}
	sem := make(chan struct{}, metadataDialers)
	for {
		f.mu.Lock()
		var next []netip.AddrPort
		next, f.queue = f.queue, nil
		f.mu.Unlock()
		for _, ap := range next {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, f.failure(ctx)
			case <-f.done:
				return f.metainfo(m)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := f.fetchFrom(ctx, ap); err != nil {
					c.log.Debug("metadata from peer", "peer", ap, "err", err)
					f.retryLater(ap, err)
				}
			}()
		}
		select {
		case <-f.done:
			return f.metainfo(m)
		case <-ctx.Done():
			return nil, f.failure(ctx)
		case <-f.newPeers:
		}
	}
}

func (f *metadataFetch) failure(ctx context.Context) error {
	select {
	case <-f.done:
		return nil
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := fmt.Errorf("%w after finding %d peers: %w", ErrNoMetadata, len(f.seen), ctx.Err())
	if f.lastError != nil {
		err = fmt.Errorf("%w (last peer error: %v)", err, f.lastError)
	}
	return err
}

func (f *metadataFetch) metainfo(m *torrentfile.Magnet) (*torrentfile.Metainfo, error) {
	var tiers [][]string
	for _, u := range m.Trackers {
		tiers = append(tiers, []string{u})
	}
	mi, err := torrentfile.FromInfo(f.result, tiers, m.WebSeeds)
	if err != nil {
		return nil, fmt.Errorf("metadata of %x: %w", m.InfoHash, err)
	}
	return mi, nil
}

// addPeers queues new peers to ask.
func (f *metadataFetch) addPeers(peers []netip.AddrPort) {
	f.mu.Lock()
	added := false
	for _, ap := range peers {
		if !ap.IsValid() || ap.Port() == 0 || f.seen[ap] || len(f.seen) >= maxCandidates || f.c.isSelf(ap) {
			continue
		}
		f.seen[ap] = true
		f.queue = append(f.queue, ap)
		added = true
	}
	n := len(f.seen)
	f.mu.Unlock()
	if added {
		if f.onPeers != nil {
			f.onPeers(n)
		}
		select {
		case f.newPeers <- struct{}{}:
		default:
		}
	}
}

func (f *metadataFetch) askTracker(ctx context.Context, u string) {
	req := tracker.AnnounceRequest{InfoHash: f.hash, PeerID: f.c.peerID, Port: f.c.Port(), Left: 1, NumWant: 50, Key: f.c.announceKey}
	// Announce again until the metadata is in: a seeder may announce after us (and peers
	// that dial us are refused until we have the metadata), so one answer is not enough.
	for attempt := 0; ; attempt++ {
		wait := min(metadataRetryPeers<<min(attempt, 4), time.Minute) // capped shift: no overflow
		resp, err := f.c.tracker.Announce(ctx, u, req)
		if err == nil {
			f.addPeers(resp.Peers)
			wait = max(wait, resp.MinInterval)
		} else {
			f.c.log.Debug("announce for metadata", "tracker", u, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-f.done:
			return
		case <-time.After(wait):
		}
	}
}

// fetchFrom asks one peer for metadata pieces until the metadata is complete.
func (f *metadataFetch) fetchFrom(ctx context.Context, ap netip.AddrPort) error {
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	conn, hs, _, err := f.c.connectPeer(hctx, ap, f.hash, connectOptions{p2p: metadataConnOptions()})
	cancel()
	if err != nil {
		return err
	}
	return f.talk(ctx, conn, hs, ap)
}

// metadataConnOptions are the connection options while the metadata is unknown.
func metadataConnOptions() p2p.Options {
	return p2p.Options{Reserved: p2p.ReservedBits(true, false, false), ReadTimeout: 30 * time.Second}
}

// talk asks one connected peer for metadata pieces until the metadata is complete.
func (f *metadataFetch) talk(ctx context.Context, conn *p2p.Conn, hs p2p.Handshake, ap netip.AddrPort) error {
	defer conn.Close()
	ctx, cancelPeer := context.WithCancel(ctx) // ends this peer's helper goroutine
	defer cancelPeer()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if !hs.SupportsExtensions() {
		return errors.New("peer does not support the extension protocol")
	}
	ours, err := p2p.OurExtHandshake(0, int(f.c.Port()), ap.Addr(), maxUploadQueue, clientVersion).Encode()
	if err != nil {
		return err
	}
	if err := conn.WriteMessage(p2p.Extended(p2p.ExtHandshakeID, ours)); err != nil {
		return err
	}
	if err := conn.Flush(); err != nil {
		return err
	}
	// Pieces may need asking again (a timeout, a reject or a bad piece elsewhere) while this
	// peer has nothing to say: look every second.
	var theirID atomic.Uint32
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	go func() {
		for {
			select {
			case <-ticker.C:
				if id := theirID.Load(); id != 0 {
					if err := f.requestMore(conn, uint8(id)); err != nil {
						conn.Close()
						return
					}
				}
			case <-f.done:
				conn.Close()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		m, err := conn.ReadMessage()
		if err != nil {
			select {
			case <-f.done:
				return nil
			default:
			}
			return err
		}
		if m.KeepAlive || m.ID != p2p.MsgExtended {
			continue
		}
		switch m.ExtendedID {
		case p2p.ExtHandshakeID:
			h, err := p2p.ParseExtHandshake(m.Payload)
			if err != nil {
				return err
			}
			id, ok := h.ExtID(p2p.ExtMetadataName)
			if !ok || h.MetadataSize <= 0 {
				return errors.New("peer does not serve metadata")
			}
			if err := f.setSize(h.MetadataSize); err != nil {
				return err
			}
			theirID.Store(uint32(id))
		case p2p.LocalMetadataID:
			msg, err := p2p.ParseMetadataMsg(m.Payload)
			if errors.Is(err, p2p.ErrUnknownMetadataMsgType) {
				continue // BEP 9: ignore
			}
			if err != nil {
				return err
			}
			if err := f.receive(ap, msg); err != nil {
				return err
			}
		default:
			continue
		}
		if id := theirID.Load(); id != 0 {
			if err := f.requestMore(conn, uint8(id)); err != nil {
				return err
			}
		}
	}
}

func (f *metadataFetch) setSize(size int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.md == nil {
		md, err := p2p.NewMetadata(f.hash, size)
		if err != nil {
			return err
		}
		f.md = md
		return nil
	}
	if f.md.Size() != size {
		return fmt.Errorf("%w: metadata_size %d, others said %d", p2p.ErrProtocol, size, f.md.Size())
	}
	return nil
}

// receive stores a data message; when the metadata is complete it is verified.
func (f *metadataFetch) receive(from netip.AddrPort, msg p2p.MetadataMsg) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.result != nil || f.md == nil {
		return nil
	}
	switch msg.Type {
	case p2p.MetadataReject:
		delete(f.asked, msg.Piece)
		return errors.New("peer rejected a metadata request")
	case p2p.MetadataData:
	default:
		return nil
	}
	if msg.TotalSize != f.md.Size() {
		return fmt.Errorf("%w: total_size %d, expected %d", p2p.ErrProtocol, msg.TotalSize, f.md.Size())
	}
	if err := f.md.Put(msg.Piece, msg.Data); err != nil {
		return err
	}
	f.senders[msg.Piece] = from
	delete(f.asked, msg.Piece)
	if !f.md.Complete() {
		return nil
	}
	b, err := f.md.Verify()
	if err != nil {
		// Somebody lied: never ask those peers again.
		for _, s := range f.senders {
			f.bad[s.Addr()] = true
		}
		clear(f.senders)
		f.c.log.Warn("metadata from peers did not match the info hash", "err", err)
		return err
	}
	f.result = append([]byte(nil), b...)
	close(f.done)
	return nil
}

// requestMore asks this peer for pieces nobody is fetching now.
func (f *metadataFetch) requestMore(conn *p2p.Conn, id uint8) error {
	f.mu.Lock()
	if f.md == nil || f.result != nil || f.bad[conn.RemoteAddr().Addr()] {
		bad := f.bad[conn.RemoteAddr().Addr()]
		f.mu.Unlock()
		if bad {
			return errors.New("peer sent metadata that did not verify")
		}
		return nil
	}
	now := time.Now()
	var pieces []int
	for _, i := range f.md.Missing() {
		if at, ok := f.asked[i]; ok && now.Sub(at) < metadataPieceTimeout {
			continue
		}
		f.asked[i] = now
		pieces = append(pieces, i)
	}
	f.mu.Unlock()
	for _, i := range pieces {
		b, err := p2p.MetadataMsg{Type: p2p.MetadataRequest, Piece: i}.Encode()
		if err != nil {
			return err
		}
		if err := conn.WriteMessage(p2p.Extended(id, b)); err != nil {
			return err
		}
	}
	return conn.Flush()
}
