package p2p

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/gotfs/gotfs/p2p/mse"
)

// acceptWithOne listens and runs AcceptWith with cfg for testHash (whose MSE stream key is
// found through mse.SKeyHash), sending the result on the returned channel.
func acceptWithOne(t *testing.T, cfg AcceptConfig) (netip.AddrPort, chan acceptResult) {
	ch := make(chan acceptResult, 1)
	if cfg.Encrypted != 0 {
		cfg.SKey = func(req2 [20]byte) ([20]byte, bool) { return testHash, req2 == mse.SKeyHash(testHash) }
	}
	addr := listen(t, func(nc net.Conn) {
		c, h, err := AcceptWith(nc, peerB, func(ih [20]byte) (Options, bool) { return testOpts(), ih == testHash }, cfg)
		ch <- acceptResult{c, h, err}
	})
	return addr, ch
}

// dialKind dials addr in plaintext (provide 0) or with MSE offering provide.
func dialKind(t *testing.T, addr netip.AddrPort, infoHash [20]byte, provide mse.Methods) (*Conn, error) {
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var c *Conn
	if provide == 0 {
		c, _, err = Client(context.Background(), nc, infoHash, peerA, testOpts())
	} else {
		c, _, err = EncryptedClient(context.Background(), nc, infoHash, peerA, testOpts(), provide)
	}
	return c, err
}

// TestAcceptWith: every kind of dial against every accept policy: which connect, with which
// method on both ends, and messages flow both ways afterwards.
func TestAcceptWith(t *testing.T) {
	prefer := AcceptConfig{Plaintext: true, Encrypted: mse.RC4 | mse.Plaintext}
	require := AcceptConfig{Encrypted: mse.RC4}
	off := AcceptConfig{Plaintext: true}
	cases := []struct {
		name    string
		cfg     AcceptConfig
		provide mse.Methods // 0: plaintext BEP 3 handshake
		want    mse.Methods // 0 with ok: plain handshake
		ok      bool
	}{
		{"plain to prefer", prefer, 0, 0, true},
		{"mse to prefer", prefer, mse.RC4 | mse.Plaintext, mse.Plaintext, true},
		{"mse rc4-only to prefer", prefer, mse.RC4, mse.RC4, true},
		{"mse plaintext-only to prefer", prefer, mse.Plaintext, mse.Plaintext, true},
		{"plain to require", require, 0, 0, false},
		{"mse to require", require, mse.RC4 | mse.Plaintext, mse.RC4, true},
		{"mse plaintext-only to require", require, mse.Plaintext, 0, false},
		{"plain to off", off, 0, 0, true},
		{"mse to off", off, mse.RC4, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, ch := acceptWithOne(t, tc.cfg)
			a, aerr := dialKind(t, addr, testHash, tc.provide)
			r := <-ch
			if !tc.ok {
				if r.err == nil || aerr == nil {
					t.Fatalf("connected (errors %v / %v), want refused", aerr, r.err)
				}
				if !errors.Is(r.err, ErrProtocol) {
					t.Errorf("accept error %v does not wrap ErrProtocol", r.err)
				}
				if tc.provide != 0 && !errors.Is(aerr, ErrEncryptedHandshake) {
					t.Errorf("dial error %v does not wrap ErrEncryptedHandshake", aerr)
				}
				return
			}
			if aerr != nil || r.err != nil {
				t.Fatalf("errors %v / %v", aerr, r.err)
			}
			defer a.Close()
			defer r.c.Close()
			if a.Encryption() != tc.want || r.c.Encryption() != tc.want {
				t.Fatalf("encryption %v / %v, want %v", a.Encryption(), r.c.Encryption(), tc.want)
			}
			if r.h.PeerID != peerA {
				t.Errorf("peer id %q", r.h.PeerID)
			}
			for _, pair := range [][2]*Conn{{a, r.c}, {r.c, a}} {
				if err := pair[0].WriteMessage(Have(7)); err != nil {
					t.Fatal(err)
				}
				if err := pair[0].Flush(); err != nil {
					t.Fatal(err)
				}
				if m, err := pair[1].ReadMessage(); err != nil || m.ID != MsgHave || m.Index != 7 {
					t.Fatalf("read %v, %v", m, err)
				}
			}
		})
	}
}

// TestAcceptWithUnknownTorrent: an MSE handshake for a torrent we do not serve is refused
// at the stream key, and one whose BEP 3 handshake names another torrent than its stream
// key is refused as a mismatch.
func TestAcceptWithUnknownTorrent(t *testing.T) {
	addr, ch := acceptWithOne(t, AcceptConfig{Plaintext: true, Encrypted: mse.RC4})
	if _, err := dialKind(t, addr, otherHash, mse.RC4); err == nil {
		t.Fatal("dial for an unknown torrent succeeded")
	}
	if r := <-ch; !errors.Is(r.err, mse.ErrUnknownSKey) {
		t.Fatalf("accept: %v, want ErrUnknownSKey", r.err)
	}

	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ia := AppendHandshake(nil, Handshake{InfoHash: otherHash, PeerID: peerA})
	if _, err := mse.Initiate(context.Background(), nc, testHash, mse.RC4, ia); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; !errors.Is(r.err, ErrInfoHashMismatch) || !errors.Is(r.err, ErrProtocol) {
		t.Fatalf("accept: %v, want ErrInfoHashMismatch", r.err)
	}
}

// TestAcceptWithShortStream: a connection closed before 20 bytes is a clear protocol error.
func TestAcceptWithShortStream(t *testing.T) {
	addr, ch := acceptWithOne(t, AcceptConfig{Plaintext: true, Encrypted: mse.RC4})
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte{19, 'B'})
	nc.Close()
	if r := <-ch; !errors.Is(r.err, ErrProtocol) {
		t.Fatalf("accept: %v", r.err)
	}
}
