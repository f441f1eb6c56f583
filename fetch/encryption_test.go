package fetch

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/p2p/mse"
	"github.com/gotfs/gotfs/torrentfile"
)

// acceptAnyKind is what a scripted peer accepts: a plaintext or an encrypted handshake for ih.
func acceptAnyKind(ih torrentfile.Hash) p2p.AcceptConfig {
	return p2p.AcceptConfig{Plaintext: true, Encrypted: mse.RC4 | mse.Plaintext, SKey: func(req2 [20]byte) ([20]byte, bool) {
		return ih, req2 == mse.SKeyHash(ih)
	}}
}

func TestParseEncryption(t *testing.T) {
	for _, e := range []Encryption{EncryptionPrefer, EncryptionRequire, EncryptionOff} {
		if got, err := ParseEncryption(e.String()); err != nil || got != e {
			t.Errorf("%v: %v, %v", e, got, err)
		}
	}
	if _, err := ParseEncryption("yes"); err == nil {
		t.Error("yes: no error")
	}
	if Encryption(0) != EncryptionPrefer {
		t.Error("the zero value is not prefer")
	}
}

// peerEncryptions returns the MSE method of each connected peer of n.
func peerEncryptions(n *node) []mse.Methods {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	var out []mse.Methods
	for p := range n.t.peers {
		out = append(out, p.conn.Encryption())
	}
	return out
}

// TestEncryptionModePairs: a leecher and a seeder with each pair of policies. The pairs that
// must connect download the torrent over the method they must agree on (0: a plain BEP 3
// handshake); the others never connect. A prefer leecher that fell back to plaintext
// remembers it for the seeder's address.
func TestEncryptionModePairs(t *testing.T) {
	src := t.TempDir()
	// The leecher wants only the first file: it never becomes a seeder, so the connection
	// stays up (two seeders drop each other) and its method can be checked after the download.
	mi := makeTorrent(t, src, "enc", []testswarm.File{{Path: []string{"a.bin"}, Size: 5 * 16384}, {Path: []string{"b.bin"}, Size: 3*16384 + 77}}, 16384, 31)
	const never = mse.Methods(0xff)
	modes := []Encryption{EncryptionPrefer, EncryptionRequire, EncryptionOff}
	want := map[[2]Encryption]mse.Methods{ // {leecher, seeder}
		{EncryptionPrefer, EncryptionPrefer}:   mse.Plaintext, // an obfuscated handshake, a plain stream
		{EncryptionPrefer, EncryptionRequire}:  mse.RC4,
		{EncryptionPrefer, EncryptionOff}:      0,
		{EncryptionRequire, EncryptionPrefer}:  mse.RC4,
		{EncryptionRequire, EncryptionRequire}: mse.RC4,
		{EncryptionRequire, EncryptionOff}:     never,
		{EncryptionOff, EncryptionPrefer}:      0,
		{EncryptionOff, EncryptionRequire}:     never,
		{EncryptionOff, EncryptionOff}:         0,
	}
	for _, lm := range modes {
		for _, sm := range modes {
			t.Run("leecher "+lm.String()+" seeder "+sm.String(), func(t *testing.T) {
				t.Parallel()
				seeder := runNode(t, Config{ListenAddr: hostileIP() + ":0", Encryption: sm}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
				dst := t.TempDir()
				st, err := cache.Open(&mi.Info, cache.Options{DataDir: dst, RecordPath: filepath.Join(t.TempDir(), "rec")})
				if err != nil {
					t.Fatal(err)
				}
				leecher := runNode(t, Config{ListenAddr: hostileIP() + ":0", Encryption: lm}, mi,
					TorrentOptions{Storage: st, Background: true, Peers: []netip.AddrPort{seeder.c.Addr()}, Include: func(i int) bool { return i == 0 }})
				w := want[[2]Encryption{lm, sm}]
				if w == never {
					select {
					case <-leecher.t.Complete():
						t.Fatal("downloaded")
					case <-time.After(1500 * time.Millisecond):
					}
					if s := leecher.t.Stats(); s.PeersSeen != 0 || seeder.t.Stats().PeersSeen != 0 {
						t.Fatalf("peers seen: leecher %d, seeder %d", s.PeersSeen, seeder.t.Stats().PeersSeen)
					}
					return
				}
				waitComplete(t, leecher, 10*time.Second)
				sameFiles(t, mi, src, dst, func(i int) bool { return i == 0 })
				if got := peerEncryptions(leecher); len(got) != 1 || got[0] != w {
					t.Errorf("leecher's peers use %v, want [%v]", got, w)
				}
				if got := peerEncryptions(seeder); len(got) != 1 || got[0] != w {
					t.Errorf("seeder's peers use %v, want [%v]", got, w)
				}
				leecher.t.mu.Lock()
				c := leecher.t.candidates[seeder.c.Addr()]
				fellBack := c != nil && c.plaintext
				leecher.t.mu.Unlock()
				if wantFallBack := lm == EncryptionPrefer && sm == EncryptionOff; fellBack != wantFallBack {
					t.Errorf("candidate remembers plaintext: %v, want %v", fellBack, wantFallBack)
				}
			})
		}
	}
}

// TestConnectRemembersPlaintext: once a candidate is known to refuse encryption, prefer dials
// it in plaintext straight away (one connection, no encrypted attempt); require never falls
// back.
func TestConnectRemembersPlaintext(t *testing.T) {
	src := t.TempDir()
	mi := makeTorrent(t, src, "enc2", []testswarm.File{{Path: []string{"f.bin"}, Size: 16384}}, 16384, 32)
	seeder := runNode(t, Config{ListenAddr: hostileIP() + ":0", Encryption: EncryptionOff}, mi, TorrentOptions{Storage: testswarm.OpenSeed(t, mi, src)})
	for _, tc := range []struct {
		mode      Encryption
		plaintext bool // what the candidate taught us
		ok        bool
		fellBack  bool
	}{
		{EncryptionPrefer, false, true, true},
		{EncryptionPrefer, true, true, false},
		{EncryptionRequire, false, false, false},
		{EncryptionRequire, true, false, false},
	} {
		c, err := NewClient(Config{ListenAddr: hostileIP() + ":0", Encryption: tc.mode, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		conn, _, fellBack, err := c.connect(t.Context(), seeder.c.Addr(), mi.InfoHash, p2p.Options{NumPieces: 1}, tc.plaintext, c.dialTCP)
		if (err == nil) != tc.ok || fellBack != tc.fellBack {
			t.Errorf("%v, plaintext known %v: err %v, fell back %v; want ok %v, fell back %v", tc.mode, tc.plaintext, err, fellBack, tc.ok, tc.fellBack)
		}
		if conn != nil {
			if conn.Encryption() != 0 {
				t.Errorf("%v: encryption %v with a plaintext-only seeder", tc.mode, conn.Encryption())
			}
			conn.Close()
		}
		c.Close()
	}
}
