package fetch

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
)

// TestFastExtensionAllowedFastWhileChoked: a seeder that never unchokes us but lets us have one
// piece fast (BEP 6) still serves a read of that piece, and rejects the rest.
func TestFastExtensionAllowedFastWhileChoked(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "fast", []testswarm.File{{Path: []string{"f.bin"}, Size: 8 * 32 << 10}}, 32<<10, 21)
	data, err := os.ReadFile(filepath.Join(src, "fast", "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	const fastPiece = 3
	ln, err := net.Listen("tcp", "127.0.0.111:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rejected := make(chan uint32, 100)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		opts := p2p.Options{NumPieces: mi.Info.NumPieces(), Reserved: p2p.ReservedBits(false, false, true)}
		var peerID [20]byte
		copy(peerID[:], "-XX0001-scriptedpeer")
		// As a real peer would, it takes whichever handshake the engine begins with.
		conn, _, err := p2p.AcceptWith(nc, peerID, func([20]byte) (p2p.Options, bool) { return opts, true }, acceptAnyKind(mi.InfoHash))
		if err != nil || !conn.FastEnabled() {
			t.Errorf("scripted seeder: handshake %v, fast %v", err, err == nil && conn.FastEnabled())
			return
		}
		defer conn.Close()
		conn.WriteMessage(p2p.HaveAll())
		conn.WriteMessage(p2p.AllowedFast(fastPiece))
		conn.Flush()
		for {
			m, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if m.ID != p2p.MsgRequest {
				continue
			}
			if m.Index != fastPiece {
				rejected <- m.Index
				conn.WriteMessage(p2p.RejectRequest(m.Index, m.Begin, m.Length))
			} else {
				off := int(m.Index)*(32<<10) + int(m.Begin)
				conn.WriteMessage(p2p.Piece(m.Index, m.Begin, data[off:off+int(m.Length)]))
			}
			conn.Flush()
		}
	}()
	peer := netip.MustParseAddrPort(ln.Addr().String())
	l := startLeecher(t, "127.0.0.112", mi, t.TempDir(), filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{peer}, TorrentOptions{})
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]byte, 1000)
	off := int64(fastPiece*(32<<10) + 500)
	if _, err := r.ReadAt(ctx, buf, off); err != nil {
		t.Fatalf("read of the allowed-fast piece while choked: %v\n%s", err, l.t.debugString())
	}
	if !bytes.Equal(buf, data[off:off+1000]) {
		t.Fatal("wrong bytes")
	}
	select {
	case i := <-rejected:
		t.Errorf("piece %d was requested from a choking peer that did not allow it", i)
	default:
	}
}

// TestFastExtensionBetweenOurClients: two gotfs clients negotiate BEP 6 (have-all, have-none,
// allowed-fast) and the download completes.
func TestFastExtensionBetweenOurClients(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "fast2", oddFiles, 16<<10, 22)
	s := startSeeder(t, "127.0.0.113", mi, src)
	dst := t.TempDir()
	l := startLeecher(t, "127.0.0.114", mi, dst, filepath.Join(t.TempDir(), "rec"), []netip.AddrPort{s.c.Addr()}, TorrentOptions{})
	// Nothing is wanted yet: the connection stays up to be looked at.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.t.mu.Lock()
		var fast, hasAll bool
		n := len(l.t.peers)
		for p := range l.t.peers {
			fast, hasAll = p.fast.enabled, p.hasCount == mi.Info.NumPieces()
		}
		l.t.mu.Unlock()
		if n == 1 && fast && hasAll {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fast-extension peer with have-all: peers %d, fast %v, has all %v", n, fast, hasAll)
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.t.SetBackground(true)
	waitComplete(t, l, 30*time.Second)
	sameFiles(t, mi, src, dst, nil)
}
