package fetch

// Hostile peers: scripted peers that break the protocol or misbehave, in a swarm with an
// honest gotfs seeder. Each case checks that the download (or read) still finishes correct,
// that the bad peer is dropped or banned, and that memory stays bounded.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

// hostileIPNext hands out loopback addresses no other test of the package uses.
var hostileIPNext atomic.Int32

func hostileIP() string {
	n := hostileIPNext.Add(1)
	return fmt.Sprintf("127.4.%d.%d", n/250%250, 1+n%250)
}

// hostilePeer is a scripted peer listening on its own loopback address: each accepted
// connection completes the handshake with p2p.Accept and then runs script.
type hostilePeer struct {
	ln    net.Listener
	addr  netip.AddrPort
	ended chan hostileEnd // one per connection, when its script returned
	conns atomic.Int32
}

// hostileEnd is how a scripted connection ended: the error its script returned and when.
type hostileEnd struct {
	err error
	at  time.Time
}

// hostileReadTimeout bounds how long a scripted peer waits for the engine: long enough to be
// sure an engine that did not drop us really did not, short enough to keep tests quick.
const hostileReadTimeout = 15 * time.Second

// dropped reports whether err is the engine closing the connection (not our own timeout).
func dropped(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

var hostileIDNext atomic.Int32

// hostilePeerID returns a peer id no other scripted peer uses.
func hostilePeerID() [20]byte {
	var id [20]byte
	copy(id[:], fmt.Sprintf("-XX0001-%012d", hostileIDNext.Add(1)))
	return id
}

// listenHostile starts a scripted peer for mi on ip.
func listenHostile(t *testing.T, ip string, mi *torrentfile.Metainfo, reserved [8]byte, script func(c *p2p.Conn) error) *hostilePeer {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostilePeer{ln: ln, addr: netip.MustParseAddrPort(ln.Addr().String()), ended: make(chan hostileEnd, 64)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			h.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				opts := p2p.Options{NumPieces: mi.Info.NumPieces(), Reserved: reserved, ReadTimeout: hostileReadTimeout}
				c, _, err := p2p.AcceptWith(nc, hostilePeerID(), func([20]byte) (p2p.Options, bool) { return opts, true }, acceptAnyKind(mi.InfoHash))
				if err == nil {
					err = script(c)
					c.Close()
				}
				select {
				case h.ended <- hostileEnd{err, time.Now()}:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return h
}

// waitEnd waits for the first scripted connection to end and returns how.
func (h *hostilePeer) waitEnd(t *testing.T, d time.Duration) hostileEnd {
	t.Helper()
	select {
	case e := <-h.ended:
		return e
	case <-time.After(d):
		t.Fatalf("scripted peer %v: connection still open after %v", h.addr, d)
		return hostileEnd{}
	}
}

// drain reads messages until the connection ends and returns the error that ended it.
func drain(c *p2p.Conn) error {
	for {
		if _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

// sendAll writes messages and flushes them.
func sendAll(c *p2p.Conn, ms ...p2p.Message) error {
	for _, m := range ms {
		if err := c.WriteMessage(m); err != nil {
			return err
		}
	}
	return c.Flush()
}

// sendRaw flushes what is buffered and writes b straight to the socket (for what p2p would
// refuse to encode).
func sendRaw(c *p2p.Conn, b []byte) error {
	if err := c.Flush(); err != nil {
		return err
	}
	_, err := c.NetConn().Write(b)
	return err
}

func allPieces(n int) p2p.Bitfield {
	bf := p2p.NewBitfield(n)
	for i := range n {
		bf.Set(i)
	}
	return bf
}

// peersFrom counts the torrent's connected peers at ip.
func peersFrom(tor *Torrent, ip netip.Addr) int {
	tor.mu.Lock()
	defer tor.mu.Unlock()
	n := 0
	for p := range tor.peers {
		if p.addr.Addr() == ip {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memNow returns HeapInuse and TotalAlloc after a garbage collection.
func memNow() (inuse, total uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.TotalAlloc
}

// heapGrowth formats the growth of HeapInuse since before, and fails past limit.
func checkHeap(t *testing.T, before uint64, limit uint64) {
	t.Helper()
	after, _ := memNow()
	grow := int64(after) - int64(before)
	t.Logf("heap in use: %.1f MiB before, %.1f MiB after (%+.2f MiB)", float64(before)/(1<<20), float64(after)/(1<<20), float64(grow)/(1<<20))
	if grow > int64(limit) {
		t.Errorf("heap in use grew by %d bytes, want at most %d", grow, limit)
	}
}

// hostileSwarm is a torrent of one file with an honest gotfs seeder.
type hostileSwarm struct {
	mi     *torrentfile.Metainfo
	src    string
	data   []byte
	seeder *node
}

const hostilePiece = 16 << 10 // one block per piece: every piece has a single sender

// newHostileSwarm makes a torrent of 65 pieces of 16 KiB, the last one short (so a bitfield
// has spare bits), and an honest seeder of it.
func newHostileSwarm(t *testing.T, seed uint64) *hostileSwarm {
	t.Helper()
	src := t.TempDir()
	mi := makeTorrent(t, src, "hostile", []testswarm.File{{Path: []string{"f.bin"}, Size: 64*hostilePiece + 5000}}, hostilePiece, seed)
	data, err := os.ReadFile(filepath.Join(src, "hostile", "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return &hostileSwarm{mi: mi, src: src, data: data, seeder: startSeeder(t, hostileIP(), mi, src)}
}

// block returns the bytes a request asks for.
func (s *hostileSwarm) block(m p2p.Message) []byte {
	off := int(m.Index)*hostilePiece + int(m.Begin)
	return s.data[off : off+int(m.Length)]
}

// hostileLeecher is startLeecher over TCP only: the scripted peers speak TCP alone, and a
// uTP attempt first would only wait for its timeout.
func hostileLeecher(t *testing.T, mi *torrentfile.Metainfo, dir, record string, peers []netip.AddrPort, opts TorrentOptions) *node {
	t.Helper()
	return startLeecherWith(t, Config{ListenAddr: hostileIP() + ":0", Transport: TransportTCP}, mi, dir, record, peers, opts)
}

// leech starts a background download from the given peers and the honest seeder.
func (s *hostileSwarm) leech(t *testing.T, peers ...netip.AddrPort) (*node, string) {
	t.Helper()
	dst := t.TempDir()
	peers = append(peers, s.seeder.c.Addr())
	return hostileLeecher(t, s.mi, dst, filepath.Join(t.TempDir(), "rec"), peers, TorrentOptions{Background: true}), dst
}

// leechFrom starts a background download from the given peers only.
func (s *hostileSwarm) leechFrom(t *testing.T, peers ...netip.AddrPort) (*node, string) {
	t.Helper()
	dst := t.TempDir()
	return hostileLeecher(t, s.mi, dst, filepath.Join(t.TempDir(), "rec"), peers, TorrentOptions{Background: true}), dst
}

// addHonest lets a leecher find the honest seeder.
func (s *hostileSwarm) addHonest(l *node) {
	l.t.mu.Lock()
	l.t.addCandidatesLocked([]netip.AddrPort{s.seeder.c.Addr()})
	l.t.mu.Unlock()
}

// seedScript claims every piece, unchokes, and answers each request with serve.
func (s *hostileSwarm) seedScript(serve func(c *p2p.Conn, m p2p.Message) error) func(c *p2p.Conn) error {
	return func(c *p2p.Conn) error {
		if err := sendAll(c, p2p.BitfieldMsg(allPieces(s.mi.Info.NumPieces())), p2p.Unchoke()); err != nil {
			return err
		}
		for {
			m, err := c.ReadMessage()
			if err != nil {
				return err
			}
			if m.ID == p2p.MsgRequest && serve != nil {
				if err := serve(c, m); err != nil {
					return err
				}
			}
		}
	}
}

// TestHostileCorruptBlocks: a peer whose every block is wrong is banned after two bad pieces;
// the download is still correct.
func TestHostileCorruptBlocks(t *testing.T) {
	s := newHostileSwarm(t, 201)
	before, _ := memNow()
	var served atomic.Int32
	bad := listenHostile(t, hostileIP(), s.mi, [8]byte{}, s.seedScript(func(c *p2p.Conn, m p2p.Message) error {
		b := bytes.Clone(s.block(m))
		b[len(b)/2] ^= 0x55
		served.Add(1)
		return sendAll(c, p2p.Piece(m.Index, m.Begin, b))
	}))
	start := time.Now()
	// The bad peer alone first, so it surely serves pieces; the honest seeder after the ban.
	l, dst := s.leechFrom(t, bad.addr)
	waitUntil(t, 30*time.Second, "bad peer not banned", func() bool { return l.t.Stats().Banned == 1 })
	s.addHonest(l)
	waitComplete(t, l, 30*time.Second)
	t.Logf("download complete in %v", time.Since(start))
	sameFiles(t, s.mi, s.src, dst, nil)
	st := l.t.Stats()
	if st.Banned != 1 || st.HashFailures < strikesToBan {
		t.Errorf("banned %d, hash failures %d: want 1 ban after %d bad pieces", st.Banned, st.HashFailures, strikesToBan)
	}
	e := bad.waitEnd(t, 5*time.Second)
	if !dropped(e.err) {
		t.Errorf("banned peer's connection ended by %v, want closed by the engine", e.err)
	}
	if n := peersFrom(l.t, bad.addr.Addr()); n != 0 {
		t.Errorf("%d connections from the banned peer", n)
	}
	t.Logf("bad blocks served %d, hash failures %d, wasted %d bytes", served.Load(), st.HashFailures, st.Wasted)
	l.close()
	checkHeap(t, before, 8<<20)
}

// protocolCase is a scripted peer that breaks the wire protocol in one way; the engine must
// drop it while the honest seeder completes the download.
type protocolCase struct {
	name     string
	reserved [8]byte
	script   func(s *hostileSwarm, c *p2p.Conn) error
}

func TestHostileProtocolViolations(t *testing.T) {
	s := newHostileSwarm(t, 202)
	n := s.mi.Info.NumPieces()
	bitfieldThen := func(ms ...p2p.Message) func(s *hostileSwarm, c *p2p.Conn) error {
		return func(s *hostileSwarm, c *p2p.Conn) error {
			if err := sendAll(c, append([]p2p.Message{p2p.BitfieldMsg(allPieces(n))}, ms...)...); err != nil {
				return err
			}
			return drain(c)
		}
	}
	rawThen := func(raw []byte) func(s *hostileSwarm, c *p2p.Conn) error {
		return func(s *hostileSwarm, c *p2p.Conn) error {
			if err := sendAll(c, p2p.BitfieldMsg(allPieces(n))); err != nil {
				return err
			}
			if err := sendRaw(c, raw); err != nil {
				return err
			}
			return drain(c)
		}
	}
	huge := func(id byte) []byte { return []byte{0xff, 0xff, 0xff, 0xff, id} }
	ext := p2p.ReservedBits(true, false, false)
	spare := allPieces(n)
	spare[len(spare)-1] = 0xff
	cases := []protocolCase{
		{name: "unrequested blocks", script: func(s *hostileSwarm, c *p2p.Conn) error {
			// Still choking: nothing can have been requested. A few are forgiven, not a flood.
			ms := []p2p.Message{p2p.BitfieldMsg(allPieces(n))}
			for range maxStrayBlocks + 1 {
				ms = append(ms, p2p.Piece(3, 0, s.data[3*hostilePiece:4*hostilePiece]))
			}
			if err := sendAll(c, ms...); err != nil {
				return err
			}
			return drain(c)
		}},
		{name: "unrequested blocks after unchoke", script: func(s *hostileSwarm, c *p2p.Conn) error {
			// After the first requests, send a block of a piece that was not asked for.
			asked := map[uint32]bool{}
			return s.seedScript(func(c *p2p.Conn, m p2p.Message) error {
				asked[m.Index] = true
				if len(asked) < initialDepth {
					return nil
				}
				for i := range uint32(n - 1) {
					if !asked[i] {
						var ms []p2p.Message
						for range maxStrayBlocks + 1 {
							ms = append(ms, p2p.Piece(i, 0, s.data[int(i)*hostilePiece:int(i+1)*hostilePiece]))
						}
						return sendAll(c, ms...)
					}
				}
				return errors.New("every piece was asked for")
			})(c)
		}},
		{name: "block of the wrong length", script: func(s *hostileSwarm, c *p2p.Conn) error {
			return s.seedScript(func(c *p2p.Conn, m p2p.Message) error {
				return sendAll(c, p2p.Piece(m.Index, m.Begin, s.block(m)[:m.Length/2]))
			})(c)
		}},
		{name: "4 GiB piece prefix", script: rawThen(huge(byte(p2p.MsgPiece)))},
		{name: "4 GiB bitfield prefix", script: func(s *hostileSwarm, c *p2p.Conn) error {
			if err := sendRaw(c, huge(byte(p2p.MsgBitfield))); err != nil {
				return err
			}
			return drain(c)
		}},
		{name: "4 GiB extended prefix", reserved: ext, script: rawThen(huge(byte(p2p.MsgExtended)))},
		{name: "4 GiB unknown message prefix", script: rawThen(huge(99))},
		{name: "4 GiB have prefix", script: rawThen(huge(byte(p2p.MsgHave)))},
		{name: "bitfield too short", script: bitfieldThenRaw(p2p.BitfieldMsg(make([]byte, (n+7)/8-1)))},
		{name: "bitfield too long", script: bitfieldThenRaw(p2p.BitfieldMsg(make([]byte, (n+7)/8+1)))},
		{name: "bitfield with spare bits", script: bitfieldThenRaw(p2p.BitfieldMsg(spare))},
		{name: "have out of range", script: bitfieldThen(p2p.Have(uint32(n)))},
		{name: "have at 2^32-1", script: bitfieldThen(p2p.Have(1<<32 - 1))},
		{name: "piece out of range", script: bitfieldThen(p2p.Piece(uint32(n), 0, make([]byte, 100)))},
		{name: "fast message without the fast bit", script: bitfieldThen(p2p.HaveAll())},
		{name: "extended without the extension bit", script: bitfieldThen(p2p.Extended(0, []byte("de")))},
		{name: "extension handshake not bencode", reserved: ext, script: bitfieldThen(p2p.Extended(0, []byte("this is not bencode")))},
		{name: "extension handshake truncated", reserved: ext, script: bitfieldThen(p2p.Extended(0, []byte("d1:md11:ut_metadatai")))},
		{name: "extension handshake a list", reserved: ext, script: bitfieldThen(p2p.Extended(0, []byte("li1ee")))},
		{name: "ut_metadata not bencode", reserved: ext, script: bitfieldThen(p2p.Extended(p2p.LocalMetadataID, []byte{0xde, 0xad, 0xbe, 0xef}))},
		{name: "ut_pex not bencode", reserved: ext, script: bitfieldThen(p2p.Extended(p2p.LocalPexID, []byte("d5:added6:")))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, total0 := memNow()
			bad := listenHostile(t, hostileIP(), s.mi, tc.reserved, func(c *p2p.Conn) error { return tc.script(s, c) })
			start := time.Now()
			// The bad peer alone first, so that nothing else (such as the end of the download,
			// which drops peers that have everything) can explain the drop; then the honest one.
			l, dst := s.leechFrom(t, bad.addr)
			e := bad.waitEnd(t, 10*time.Second)
			if !dropped(e.err) {
				t.Fatalf("connection ended by %v, want closed by the engine\n%s", e.err, l.t.debugString())
			}
			// The engine closes the socket just before it forgets the peer.
			waitUntil(t, 5*time.Second, "the dropped peer is still counted", func() bool { return l.t.Stats().Peers == 0 })
			if st := l.t.Stats(); st.Verified != 0 {
				t.Fatalf("pieces verified from the bad peer: %+v", st)
			}
			s.addHonest(l)
			waitComplete(t, l, 30*time.Second)
			t.Logf("dropped after %v (%v); download complete after %v", e.at.Sub(start).Round(time.Millisecond), e.err, time.Since(start).Round(time.Millisecond))
			sameFiles(t, s.mi, s.src, dst, nil)
			if got := peersFrom(l.t, bad.addr.Addr()); got != 0 && bad.conns.Load() == 1 {
				t.Errorf("the bad peer is still connected")
			}
			l.close()
			_, total1 := memNow()
			alloc := total1 - total0
			t.Logf("allocated %.1f MiB in all during the case", float64(alloc)/(1<<20))
			if alloc > 256<<20 {
				t.Errorf("%d bytes allocated: a length prefix was trusted", alloc)
			}
			checkHeap(t, before, 8<<20)
		})
	}
}

func bitfieldThenRaw(m p2p.Message) func(s *hostileSwarm, c *p2p.Conn) error {
	return func(s *hostileSwarm, c *p2p.Conn) error {
		if err := sendAll(c, m); err != nil {
			return err
		}
		return drain(c)
	}
}

// dialHostile connects a scripted peer from ip to a gotfs client and completes the handshake.
func dialHostile(t *testing.T, ip string, to netip.AddrPort, infoHash torrentfile.Hash, numPieces int, reserved [8]byte) (*p2p.Conn, p2p.Handshake, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", to.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := p2p.Options{NumPieces: numPieces, Reserved: reserved, ReadTimeout: hostileReadTimeout}
	return p2p.Client(ctx, nc, infoHash, hostilePeerID(), opts)
}

// waitUnchoke reads until the peer unchokes us.
func waitUnchoke(c *p2p.Conn) error {
	for {
		m, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if m.ID == p2p.MsgUnchoke {
			return nil
		}
	}
}

// TestHostileLeecherRequests: bad requests (past a piece's end, over 16 KiB, out of range)
// from a leecher make an honest gotfs seeder drop it, and the seeder keeps serving an honest
// leecher.
func TestHostileLeecherRequests(t *testing.T) {
	s := newHostileSwarm(t, 203)
	n := uint32(s.mi.Info.NumPieces())
	last := uint32(s.mi.Info.PieceSize(int(n - 1)))
	seedAddr := s.seeder.c.Addr()
	before, _ := memNow()
	cases := []struct {
		name string
		req  p2p.Message
	}{
		{"past the end of the last piece", p2p.Request(n-1, last-100, 16<<10)},
		{"past the end of a full piece", p2p.Request(0, hostilePiece-1, 2)},
		{"begin past the piece", p2p.Request(1, hostilePiece, 1)},
		{"begin near 2^32", p2p.Request(1, 1<<32-10, 100)},
		{"over 16 KiB", p2p.Request(0, 0, 32<<10)},
		{"4 GiB length", p2p.Request(0, 0, 1<<32-1)},
		{"zero length", p2p.Request(0, 0, 0)},
		{"index out of range", p2p.Request(n, 0, 16<<10)},
		{"cancel out of range", p2p.Cancel(n+5, 0, 16<<10)},
	}
	for _, fast := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s fast=%v", tc.name, fast), func(t *testing.T) {
				ip := hostileIP()
				c, _, err := dialHostile(t, ip, seedAddr, s.mi.InfoHash, int(n), p2p.ReservedBits(false, false, fast))
				if err != nil {
					t.Fatal(err)
				}
				if err := sendAll(c, p2p.Interested()); err != nil {
					t.Fatal(err)
				}
				if err := waitUnchoke(c); err != nil {
					t.Fatalf("no unchoke from the seeder: %v", err)
				}
				// One good request first: the seeder serves it.
				if err := sendAll(c, p2p.Request(2, 0, 16<<10)); err != nil {
					t.Fatal(err)
				}
				for {
					m, err := c.ReadMessage()
					if err != nil {
						t.Fatalf("waiting for a block: %v", err)
					}
					if m.ID == p2p.MsgPiece {
						if !bytes.Equal(m.Payload, s.data[2*hostilePiece:3*hostilePiece]) {
							t.Fatal("seeder served wrong bytes")
						}
						break
					}
				}
				start := time.Now()
				if err := sendAll(c, tc.req); err != nil {
					t.Fatal(err)
				}
				if err := drain(c); !dropped(err) {
					t.Fatalf("after %v: connection ended by %v, want closed by the seeder", tc.req, err)
				}
				t.Logf("%v: dropped after %v", tc.req, time.Since(start).Round(time.Microsecond))
				ipa := netip.MustParseAddr(ip)
				waitUntil(t, 5*time.Second, "the seeder still counts the bad leecher", func() bool { return peersFrom(s.seeder.t, ipa) == 0 })
			})
		}
	}
	// The seeder survived all that and serves an honest leecher.
	l, dst := s.leechFrom(t, seedAddr)
	waitComplete(t, l, 30*time.Second)
	sameFiles(t, s.mi, s.src, dst, nil)
	l.close()
	// The seeder sees the close when its reader does: wait for it rather than race it.
	waitUntil(t, 5*time.Second, "the seeder still has peers", func() bool { return s.seeder.t.Stats().Peers == 0 })
	checkHeap(t, before, 8<<20)
}

// uploadQueueOf returns the length of the seeder's upload queue for the peer at ip (-1: none).
func uploadQueueOf(tor *Torrent, ip netip.Addr) int {
	tor.mu.Lock()
	defer tor.mu.Unlock()
	for p := range tor.peers {
		if p.addr.Addr() == ip {
			return len(p.uploads)
		}
	}
	return -1
}

// TestHostileRequestFlood: thousands of requests keep the seeder's queue bounded; a peer that
// floods while choked is dropped; honest leechers still finish.
func TestHostileRequestFlood(t *testing.T) {
	s := newHostileSwarm(t, 204)
	n := uint32(s.mi.Info.NumPieces())
	seedAddr := s.seeder.c.Addr()
	const flood = 5000
	floodReqs := func() []p2p.Message {
		ms := make([]p2p.Message, flood)
		for k := range ms {
			ms[k] = p2p.Request(uint32(k)%(n-1), 0, 16<<10)
		}
		return ms
	}

	t.Run("choked", func(t *testing.T) {
		before, _ := memNow()
		ip := hostileIP()
		c, _, err := dialHostile(t, ip, seedAddr, s.mi.InfoHash, int(n), [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		// Never interested, so never unchoked: every request breaks BEP 3.
		start := time.Now()
		if err := sendAll(c, floodReqs()...); err != nil && !dropped(err) {
			t.Fatal(err)
		}
		if err := drain(c); !dropped(err) {
			t.Fatalf("flooder's connection ended by %v, want closed by the seeder", err)
		}
		t.Logf("%d requests while choked: dropped after %v", flood, time.Since(start).Round(time.Millisecond))
		checkHeap(t, before, 4<<20)
	})

	t.Run("unchoked", func(t *testing.T) {
		before, _ := memNow()
		ip := hostileIP()
		ipa := netip.MustParseAddr(ip)
		c, _, err := dialHostile(t, ip, seedAddr, s.mi.InfoHash, int(n), [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		if err := sendAll(c, p2p.Interested()); err != nil {
			t.Fatal(err)
		}
		if err := waitUnchoke(c); err != nil {
			t.Fatal(err)
		}
		// An honest leecher downloads while the flood goes on.
		l, dst := s.leechFrom(t, seedAddr)
		var blocks atomic.Int64
		readDone := make(chan error, 1)
		go func() {
			for {
				m, err := c.ReadMessage()
				if err != nil {
					readDone <- err
					return
				}
				if m.ID == p2p.MsgPiece {
					blocks.Add(1)
				}
			}
		}()
		maxQueue := 0
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				maxQueue = max(maxQueue, uploadQueueOf(s.seeder.t, ipa))
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		start := time.Now()
		var sendErr error
		for range 4 { // four waves of thousands of requests
			if sendErr = sendAll(c, floodReqs()...); sendErr != nil {
				break
			}
		}
		waitComplete(t, l, 30*time.Second)
		sameFiles(t, s.mi, s.src, dst, nil)
		t.Logf("honest leecher finished %v after the flood began", time.Since(start).Round(time.Millisecond))
		time.Sleep(200 * time.Millisecond)
		close(stop)
		<-sampled
		if maxQueue > maxUploadQueue {
			t.Errorf("the flooder's upload queue reached %d, bound %d", maxQueue, maxUploadQueue)
		}
		var flooderEnd error
		select {
		case flooderEnd = <-readDone:
		default:
		}
		t.Logf("%d requests while unchoked: %d blocks served, upload queue at most %d (bound %d), send error %v, flooder dropped: %v",
			4*flood, blocks.Load(), maxQueue, maxUploadQueue, sendErr, flooderEnd)
		c.Close()
		l.close()
		checkHeap(t, before, 8<<20)
	})
}

// TestHostileSilentPeer: a peer that claims every piece, unchokes and never sends a block must
// not stall reads: requests for pieces a read waits on go to the honest seeder too.
func TestHostileSilentPeer(t *testing.T) {
	s := newHostileSwarm(t, 205)
	var requests atomic.Int32
	asked := make(chan uint32, 1024)
	silent := s.seedScript(func(c *p2p.Conn, m p2p.Message) error {
		requests.Add(1)
		select {
		case asked <- m.Index:
		default:
		}
		return nil
	})
	bad := listenHostile(t, hostileIP(), s.mi, p2p.ReservedBits(true, false, true), silent)
	before, _ := memNow()
	l := hostileLeecher(t, s.mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{bad.addr}, TorrentOptions{})
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 1. The silent peer alone gets the request of a blocked read; then the honest seeder
	// comes. The read must finish soon after, not after the 60 s snub.
	const piece = 10
	off := int64(piece*hostilePiece + 100)
	buf := make([]byte, 1000)
	readErr := make(chan error, 1)
	go func() {
		_, err := r.ReadAt(ctx, buf, off)
		readErr <- err
	}()
	select {
	case i := <-asked:
		if i != piece {
			t.Fatalf("silent peer asked for piece %d, want %d", i, piece)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the silent peer was never asked\n%s", l.t.debugString())
	}
	joined := time.Now()
	s.addHonest(l)
	select {
	case err := <-readErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("read blocked on a silent peer %v after an honest seeder joined\n%s", time.Since(joined), l.t.debugString())
	}
	took := time.Since(joined)
	t.Logf("blocked read finished %v after the honest seeder joined", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("blocked read took %v with an honest seeder present", took)
	}
	if !bytes.Equal(buf, s.data[off:off+int64(len(buf))]) {
		t.Fatal("wrong bytes")
	}

	// 2. Both peers connected: read the whole file sequentially with readahead; the silent
	// peer keeps soaking up requests of readahead pieces.
	r2, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: 4 * hostilePiece})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	start := time.Now()
	var slowest time.Duration
	got := make([]byte, 0, len(s.data))
	chunk := make([]byte, 10_000)
	for off := int64(0); off < int64(len(s.data)); off += int64(len(chunk)) {
		t0 := time.Now()
		n, err := r2.ReadAt(ctx, chunk, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read at %d: %v\n%s", off, err, l.t.debugString())
		}
		slowest = max(slowest, time.Since(t0))
		got = append(got, chunk[:n]...)
	}
	if !bytes.Equal(got, s.data) {
		t.Fatal("sequential read: wrong bytes")
	}
	t.Logf("sequential read of %d bytes took %v (slowest read %v); the silent peer got %d requests",
		len(s.data), time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond), requests.Load())
	if slowest > 5*time.Second {
		t.Errorf("a read took %v with an honest seeder present", slowest)
	}
	l.close()
	checkHeap(t, before, 8<<20)
}

// TestHostileTwoSilentPeers: two silent peers hold the requests of a blocked read before the
// honest seeder comes. They fill both duplicate slots of every block; after urgentPatience
// without a block they are passed over and the honest seeder serves the read.
func TestHostileTwoSilentPeers(t *testing.T) {
	s := newHostileSwarm(t, 206)
	asked := make(chan uint32, 1024)
	silent := s.seedScript(func(c *p2p.Conn, m p2p.Message) error {
		select {
		case asked <- m.Index:
		default:
		}
		return nil
	})
	bad1 := listenHostile(t, hostileIP(), s.mi, [8]byte{}, silent)
	bad2 := listenHostile(t, hostileIP(), s.mi, [8]byte{}, silent)
	l := hostileLeecher(t, s.mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{bad1.addr, bad2.addr}, TorrentOptions{})
	waitUntil(t, 10*time.Second, "silent peers not connected", func() bool { return l.t.Stats().Peers == 2 })
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	const piece = 10
	off := int64(piece*hostilePiece + 100)
	buf := make([]byte, 1000)
	readErr := make(chan error, 1)
	go func() {
		_, err := r.ReadAt(ctx, buf, off)
		readErr <- err
	}()
	for range 2 {
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatalf("silent peers not both asked\n%s", l.t.debugString())
		}
	}
	joined := time.Now()
	s.addHonest(l)
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	took := time.Since(joined)
	t.Logf("blocked read finished %v after the honest seeder joined", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("blocked read took %v with an honest seeder present", took)
	}
}

// TestHostileWrongInfoHash: handshakes for another torrent are refused in both directions.
func TestHostileWrongInfoHash(t *testing.T) {
	s := newHostileSwarm(t, 207)
	n := s.mi.Info.NumPieces()
	other := torrentfile.Hash{0xba, 0xd}

	// A peer dialing the seeder with an unknown info hash is refused.
	ip := hostileIP()
	_, _, err := dialHostile(t, ip, s.seeder.c.Addr(), other, n, [8]byte{})
	if err == nil {
		t.Fatal("handshake with an unknown info hash was accepted")
	}
	t.Logf("dialing with another info hash: %v", err)
	if st := s.seeder.t.Stats(); st.PeersSeen != 0 {
		t.Errorf("seeder counted %d peers", st.PeersSeen)
	}

	// A peer the leecher dials answers with another info hash.
	ln, err := net.Listen("tcp", hostileIP()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ended := make(chan error, 1)
	go func() {
		var nc net.Conn
		for {
			// The leecher tries an encrypted handshake first: refuse it, as a plaintext-only
			// peer does, so that it comes back in plaintext.
			var err error
			if nc, err = ln.Accept(); err != nil {
				ended <- err
				return
			}
			nc.SetDeadline(time.Now().Add(hostileReadTimeout))
			hs := make([]byte, p2p.HandshakeLen)
			if _, err := io.ReadFull(nc, hs); err != nil {
				nc.Close()
				ended <- err
				return
			}
			if _, err := p2p.ParseHandshake(hs); err == nil {
				break
			}
			nc.Close()
		}
		defer nc.Close()
		reply := p2p.AppendHandshake(nil, p2p.Handshake{InfoHash: other, PeerID: hostilePeerID()})
		if _, err := nc.Write(reply); err != nil {
			ended <- err
			return
		}
		// Then pretend all is well: a bitfield.
		msg, _ := p2p.AppendMessage(nil, p2p.BitfieldMsg(allPieces(n)))
		nc.Write(msg)
		_, err = io.Copy(io.Discard, nc)
		if err == nil {
			err = io.EOF
		}
		ended <- err
	}()
	l, dst := s.leechFrom(t, netip.MustParseAddrPort(ln.Addr().String()))
	select {
	case err := <-ended:
		if !dropped(err) {
			t.Fatalf("wrong-hash peer's connection ended by %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a peer answering with another info hash is still connected")
	}
	if st := l.t.Stats(); st.PeersSeen != 0 {
		t.Errorf("leecher counted %d peers", st.PeersSeen)
	}
	s.addHonest(l)
	waitComplete(t, l, 30*time.Second)
	sameFiles(t, s.mi, s.src, dst, nil)
}

// delayedProxy forwards connections to target after a delay, so that the peers behind it
// answer later than others.
func delayedProxy(t *testing.T, ip string, target netip.AddrPort, delay time.Duration) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				time.Sleep(delay)
				out, err := net.Dial("tcp", target.String())
				if err != nil {
					return
				}
				defer out.Close()
				go func() { io.Copy(out, in); out.Close() }()
				io.Copy(in, out)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestHostileMetadataLiar: a peer whose ut_metadata pieces do not hash to the info hash is
// dropped, and the metadata comes from an honest peer.
func TestHostileMetadataLiar(t *testing.T) {
	mi, src := realTorrent(t, []testswarm.File{{Path: []string{"a"}, Size: 3 << 20}, {Path: []string{"b"}, Size: 777}}, 16<<10, 208)
	honest := startNode(t, hostileIP(), mi, src, true, nil, TorrentOptions{})
	var served atomic.Int32
	liar := listenHostile(t, hostileIP(), mi, p2p.ReservedBits(true, false, false), func(c *p2p.Conn) error {
		const ourID = 3
		theirID := uint8(0)
		for {
			m, err := c.ReadMessage()
			if err != nil {
				return err
			}
			if m.ID != p2p.MsgExtended {
				continue
			}
			switch m.ExtendedID {
			case p2p.ExtHandshakeID:
				h, err := p2p.ParseExtHandshake(m.Payload)
				if err != nil {
					return err
				}
				theirID, _ = h.ExtID(p2p.ExtMetadataName)
				ours, err := p2p.ExtHandshake{M: map[string]int{p2p.ExtMetadataName: ourID}, MetadataSize: len(mi.InfoBytes)}.Encode()
				if err != nil {
					return err
				}
				if err := sendAll(c, p2p.Extended(p2p.ExtHandshakeID, ours)); err != nil {
					return err
				}
			case ourID:
				req, err := p2p.ParseMetadataMsg(m.Payload)
				if err != nil {
					return err
				}
				data, err := p2p.MetadataPiece(mi.InfoBytes, req.Piece)
				if err != nil {
					return err
				}
				data = bytes.Clone(data)
				data[len(data)/3] ^= 0x20
				b, err := p2p.MetadataMsg{Type: p2p.MetadataData, Piece: req.Piece, TotalSize: len(mi.InfoBytes), Data: data}.Encode()
				if err != nil {
					return err
				}
				served.Add(1)
				if err := sendAll(c, p2p.Extended(theirID, b)); err != nil {
					return err
				}
			}
		}
	})
	late := delayedProxy(t, hostileIP(), honest.c.Addr(), 500*time.Millisecond)
	c, err := NewClient(Config{ListenAddr: hostileIP() + ":0", Logger: testLogger(t), Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	got, err := c.FetchMetadata(ctx, &torrentfile.Magnet{InfoHash: mi.InfoHash}, MetadataOptions{Peers: []netip.AddrPort{liar.addr, late}})
	if err != nil {
		t.Fatalf("FetchMetadata: %v", err)
	}
	if got.InfoHash != mi.InfoHash || !bytes.Equal(got.InfoBytes, mi.InfoBytes) {
		t.Fatal("wrong metadata")
	}
	if served.Load() == 0 {
		t.Fatal("the liar was never asked: the test proves nothing")
	}
	e := liar.waitEnd(t, 5*time.Second)
	if !dropped(e.err) {
		t.Errorf("liar's connection ended by %v, want closed by the fetcher", e.err)
	}
	t.Logf("liar served %d bad pieces; metadata from the honest peer after %v; liar dropped %v after the start",
		served.Load(), time.Since(start).Round(time.Millisecond), e.at.Sub(start).Round(time.Millisecond))
}

// TestHostileTrickler: a peer that sends its blocks one byte a second does not hold up a
// download or a blocked read.
func TestHostileTrickler(t *testing.T) {
	s := newHostileSwarm(t, 209)
	var trickled atomic.Int64
	trickle := s.seedScript(func(c *p2p.Conn, m p2p.Message) error {
		msg, err := p2p.AppendMessage(nil, p2p.Piece(m.Index, m.Begin, s.block(m)))
		if err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		for _, b := range msg {
			if _, err := c.NetConn().Write([]byte{b}); err != nil {
				return err
			}
			trickled.Add(1)
			time.Sleep(time.Second)
		}
		return nil
	})
	before, _ := memNow()

	// A blocked read whose request went to the trickler.
	bad := listenHostile(t, hostileIP(), s.mi, [8]byte{}, trickle)
	l := hostileLeecher(t, s.mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{bad.addr}, TorrentOptions{})
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	off := int64(20*hostilePiece + 7)
	buf := make([]byte, 3*hostilePiece)
	readErr := make(chan error, 1)
	go func() {
		_, err := r.ReadAt(ctx, buf, off)
		readErr <- err
	}()
	waitUntil(t, 10*time.Second, "the trickler got no request", func() bool { return trickled.Load() > 0 })
	joined := time.Now()
	s.addHonest(l)
	if err := <-readErr; err != nil {
		t.Fatalf("read: %v\n%s", err, l.t.debugString())
	}
	t.Logf("blocked read finished %v after the honest seeder joined (trickled %d bytes)", time.Since(joined).Round(time.Millisecond), trickled.Load())
	if !bytes.Equal(buf, s.data[off:off+int64(len(buf))]) {
		t.Fatal("wrong bytes")
	}

	// A whole download with the trickler and the honest seeder from the start.
	bad2 := listenHostile(t, hostileIP(), s.mi, [8]byte{}, trickle)
	start := time.Now()
	l2, dst := s.leech(t, bad2.addr)
	waitComplete(t, l2, 30*time.Second)
	sameFiles(t, s.mi, s.src, dst, nil)
	t.Logf("download with a trickler finished in %v", time.Since(start).Round(time.Millisecond))
	// Once complete, the leecher has nothing to trade with a peer claiming everything.
	e := bad2.waitEnd(t, 5*time.Second)
	if !dropped(e.err) {
		t.Errorf("trickler's connection ended by %v", e.err)
	}
	l.close()
	l2.close()
	checkHeap(t, before, 8<<20)
}
