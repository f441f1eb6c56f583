package utp

import (
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/torrentfile"
)

// testTorrent writes a 256 KiB file of pseudo-random bytes in 64 KiB pieces under dir and
// returns its metainfo, the .torrent path and the content.
func testTorrent(t *testing.T, dir string) (*torrentfile.Metainfo, string, []byte) {
	t.Helper()
	data := randomBytes(256<<10, 11)
	path := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, raw, err := torrentfile.Create(context.Background(), path, torrentfile.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(t.TempDir(), "payload.torrent")
	if err := os.WriteFile(tp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return mi, tp, data
}

var testPeerID = [20]byte{'-', 'G', 'T', '0', '0', '0', '1', '-', 'u', 't', 'p', 't', 'e', 's', 't', '0', '0', '0', '0', '1'}

func testOptions(mi *torrentfile.Metainfo) p2p.Options {
	return p2p.Options{
		NumPieces: len(mi.Info.Pieces),
		PieceSize: func(i uint32) uint32 { return uint32(mi.Info.PieceSize(int(i))) },
	}
}

// TestInteropDownloadFromLibtorrent: libtorrent (uTP only) seeds; we dial it over uTP,
// complete the BitTorrent handshake and download every piece, each matching its SHA-1.
func TestInteropDownloadFromLibtorrent(t *testing.T) {
	dir := t.TempDir()
	mi, tp, _ := testTorrent(t, dir)
	out := testenv.StartLibtorrentScript(t, "testdata/utp_peer.py", "seed", tp, dir, "127.0.0.2")
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("libtorrent did not start: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "port "))
	if err != nil {
		t.Fatalf("libtorrent said %q", line)
	}
	s := listen(t, "127.0.0.1", Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := s.Dial(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(port)))
	if err != nil {
		t.Fatal(err)
	}
	c, hs, err := p2p.Client(ctx, nc, mi.InfoHash, testPeerID, testOptions(mi))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("handshake with %x over uTP", hs.PeerID[:8])
	if err := c.WriteMessage(p2p.Interested()); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	pieces := downloadAll(t, c, mi)
	for i, piece := range pieces {
		if sha1.Sum(piece) != [20]byte(mi.Info.Pieces[i]) {
			t.Fatalf("piece %d fails its SHA-1", i)
		}
	}
	st := nc.(*Conn).Stats()
	t.Logf("%d pieces verified; uTP %+v", len(pieces), st)
}

// downloadAll requests every piece in 16 KiB blocks once unchoked and returns them.
func downloadAll(t *testing.T, c *p2p.Conn, mi *torrentfile.Metainfo) [][]byte {
	t.Helper()
	pieces := make([][]byte, len(mi.Info.Pieces))
	left := 0
	for i := range pieces {
		pieces[i] = make([]byte, mi.Info.PieceSize(i))
		left += len(pieces[i])
	}
	for left > 0 {
		m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("%d bytes missing: %v", left, err)
		}
		switch m.ID {
		case p2p.MsgUnchoke:
			for i, p := range pieces {
				for off := 0; off < len(p); off += 16 << 10 {
					if err := c.WriteMessage(p2p.Request(uint32(i), uint32(off), uint32(min(16<<10, len(p)-off)))); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
		case p2p.MsgPiece:
			if int(m.Index) < len(pieces) && int(m.Begin)+len(m.Payload) <= len(pieces[m.Index]) {
				copy(pieces[m.Index][m.Begin:], m.Payload)
				left -= len(m.Payload)
			}
		}
	}
	return pieces
}

// TestInteropSeedToLibtorrent: libtorrent (uTP only) dials our socket (connect_peer) and
// downloads every piece from us; it verifies each against its SHA-1.
func TestInteropSeedToLibtorrent(t *testing.T) {
	src := t.TempDir()
	mi, tp, data := testTorrent(t, src)
	s := listen(t, "127.0.0.1", Config{})
	us := addrOf(t, s)
	served := make(chan servedResult, 1)
	go func() { n, err := serve(s, mi, data); served <- servedResult{n, err} }()
	out := testenv.StartLibtorrentScript(t, "testdata/utp_peer.py", "leech", tp, t.TempDir(), "127.0.0.2", us.Addr().String(), fmt.Sprint(us.Port()))
	line, err := out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "done" {
		select {
		case r := <-served:
			t.Fatalf("libtorrent did not finish: %q %v (we served %d bytes: %v)", line, err, r.n, r.err)
		default:
			t.Fatalf("libtorrent did not finish: %q %v", line, err)
		}
	}
	// libtorrent has every piece verified; TCP was off on its side (and we have no TCP
	// listener at all), so they came through our uTP socket: check that we served them.
	s.Close()
	if r := <-served; r.n < int64(len(data)) {
		t.Fatalf("served %d of %d bytes: %v", r.n, len(data), r.err)
	}
}

type servedResult struct {
	n   int64
	err error
}

// serve accepts one connection on s and seeds the torrent on it until the peer leaves.
// It returns the block bytes it sent.
func serve(s *Socket, mi *torrentfile.Metainfo, data []byte) (sent int64, err error) {
	nc, err := s.Accept()
	if err != nil {
		return 0, err
	}
	c, _, err := p2p.Accept(nc, testPeerID, func(ih [20]byte) (p2p.Options, bool) {
		return testOptions(mi), ih == [20]byte(mi.InfoHash)
	})
	if err != nil {
		return sent, err
	}
	defer c.Close()
	bf := p2p.NewBitfield(len(mi.Info.Pieces))
	for i := range mi.Info.Pieces {
		bf.Set(i)
	}
	for _, m := range []p2p.Message{p2p.BitfieldMsg(bf), p2p.Unchoke()} {
		if err := c.WriteMessage(m); err != nil {
			return sent, err
		}
	}
	if err := c.Flush(); err != nil {
		return sent, err
	}
	for {
		m, err := c.ReadMessage()
		if err == io.EOF {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
		if m.ID != p2p.MsgRequest {
			continue
		}
		off := int64(m.Index)*mi.Info.PieceLength + int64(m.Begin)
		if off+int64(m.Length) > int64(len(data)) {
			return sent, fmt.Errorf("request past the end: %v", m)
		}
		if err := c.WriteMessage(p2p.Piece(m.Index, m.Begin, data[off:off+int64(m.Length)])); err != nil {
			return sent, err
		}
		if err := c.Flush(); err != nil {
			return sent, err
		}
		sent += int64(m.Length)
	}
}
