package fetch

// Encryption policy (MSE/PE, package p2p/mse). Inputs weighed: the client's Config.Encryption,
// and per candidate address whether it refused an encrypted handshake before
// (candidate.plaintext). Incoming connections are told apart by their first bytes
// (p2p.AcceptWith) and an encrypted one finds its torrent by the stream key hash.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gotfs/gotfs/internal/rawnet"
	"github.com/gotfs/gotfs/p2p"
	"github.com/gotfs/gotfs/p2p/mse"
)

// Encryption is the client's policy for protocol encryption (MSE/PE).
type Encryption int

const (
	// EncryptionPrefer (the default) accepts plaintext and encrypted connections; it dials
	// with MSE first, offering RC4 and plaintext, and when the peer drops that handshake dials
	// once more in plaintext, remembering per candidate address that it must. After an MSE
	// handshake the stream is RC4 only when the peer requires it (plaintext otherwise, as
	// libtorrent's default: RC4 costs CPU on every byte).
	EncryptionPrefer Encryption = iota
	// EncryptionRequire accepts and dials only MSE with RC4: never a plaintext connection.
	EncryptionRequire
	// EncryptionOff accepts and dials only plain BEP 3 handshakes.
	EncryptionOff
)

// String returns the setting's name, as ParseEncryption takes it.
func (e Encryption) String() string {
	switch e {
	case EncryptionPrefer:
		return "prefer"
	case EncryptionRequire:
		return "require"
	case EncryptionOff:
		return "off"
	}
	return fmt.Sprintf("Encryption(%d)", int(e))
}

// ParseEncryption parses "prefer", "require" or "off".
func ParseEncryption(s string) (Encryption, error) {
	for _, e := range []Encryption{EncryptionPrefer, EncryptionRequire, EncryptionOff} {
		if s == e.String() {
			return e, nil
		}
	}
	return 0, fmt.Errorf("encryption %q: want prefer, require or off", s)
}

// acceptConfig says which incoming handshakes the policy takes.
func (c *Client) acceptConfig() p2p.AcceptConfig {
	switch c.cfg.Encryption {
	case EncryptionRequire:
		return p2p.AcceptConfig{Encrypted: mse.RC4, SKey: c.streamKey}
	case EncryptionOff:
		return p2p.AcceptConfig{Plaintext: true}
	}
	return p2p.AcceptConfig{Plaintext: true, Encrypted: mse.RC4 | mse.Plaintext, SKey: c.streamKey}
}

// streamKey finds the torrent or magnet fetch whose info hash hashes to req2
// (HASH('req2', info hash), which an MSE initiator sends). Which of them takes the peer is
// then decided by the BEP 3 handshake inside, as for a plaintext connection.
func (c *Client) streamKey(req2 [20]byte) ([20]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h := range c.torrents {
		if mse.SKeyHash(h) == req2 {
			return h, true
		}
	}
	for h := range c.fetches {
		if mse.SKeyHash(h) == req2 {
			return h, true
		}
	}
	return [20]byte{}, false
}

// dialTCP opens a TCP connection from the client's local address, if it has one, so that a
// client bound to 127.0.0.12 is seen as 127.0.0.12 by the peer.
func (c *Client) dialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	if c.localIP.IsValid() && c.localIP.Is4() == addr.Addr().Unmap().Is4() {
		d.LocalAddr = &net.TCPAddr{IP: c.localIP.AsSlice()}
	}
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w: %w", addr, errTCPDial, err)
	}
	return rawnet.TCP(nc), nil
}

// connect dials addr with dial (dialTCP or dialUTP) and does the handshake for infoHash as
// the policy says. plaintext tells that the address refused an encrypted handshake before
// (prefer then dials in plaintext at once). It reports whether the connection fell back to
// plaintext because the peer dropped the encrypted handshake, for the caller to remember.
func (c *Client) connect(ctx context.Context, addr netip.AddrPort, infoHash [20]byte, opts p2p.Options, plaintext bool,
	dial func(context.Context, netip.AddrPort) (net.Conn, error)) (conn *p2p.Conn, hs p2p.Handshake, fellBack bool, err error) {
	handshake := func(encrypt mse.Methods) (*p2p.Conn, p2p.Handshake, error) {
		nc, err := dial(ctx, addr)
		if err != nil {
			return nil, p2p.Handshake{}, err
		}
		if encrypt == 0 {
			return p2p.Client(ctx, nc, infoHash, c.peerID, opts)
		}
		return p2p.EncryptedClient(ctx, nc, infoHash, c.peerID, opts, encrypt)
	}
	switch {
	case c.cfg.Encryption == EncryptionOff || c.cfg.Encryption == EncryptionPrefer && plaintext:
		conn, hs, err = handshake(0)
		return conn, hs, false, err
	case c.cfg.Encryption == EncryptionRequire:
		conn, hs, err = handshake(mse.RC4)
		return conn, hs, false, err
	}
	conn, hs, err = handshake(mse.RC4 | mse.Plaintext)
	if err == nil || !errors.Is(err, p2p.ErrEncryptedHandshake) || ctx.Err() != nil {
		return conn, hs, false, err
	}
	c.log.Debug("encrypted handshake failed; trying plaintext", "peer", addr, "err", err)
	conn, hs, err = handshake(0)
	return conn, hs, err == nil, err
}
