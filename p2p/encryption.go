package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gotfs/gotfs/p2p/mse"
)

// ErrEncryptedHandshake is wrapped when the MSE handshake of EncryptedClient fails: the peer
// dropped it, does not speak it, or broke it. A caller that allows plaintext may dial again
// with Client.
var ErrEncryptedHandshake = errors.New("encrypted handshake failed")

// ErrRefusedKind is wrapped (with ErrProtocol) when AcceptWith refuses the kind of
// handshake the peer began: plaintext when only MSE is accepted, MSE when only plaintext is.
var ErrRefusedKind = errors.New("handshake kind refused")

// EncryptedClient performs the initiating side on nc as Client does, inside an MSE
// handshake (package mse) that offers the methods in provide: our BEP 3 handshake rides in
// its initial payload, so encryption costs one round trip (the key exchange). The info hash
// is the MSE stream key. A failure of the MSE step wraps ErrEncryptedHandshake. It takes
// ownership of nc: on error nc is closed.
func EncryptedClient(ctx context.Context, nc net.Conn, infoHash, peerID [20]byte, opts Options, provide mse.Methods) (*Conn, Handshake, error) {
	ours := AppendHandshake(nil, Handshake{Reserved: opts.Reserved, InfoHash: infoHash, PeerID: peerID})
	mc, err := mse.Initiate(ctx, nc, infoHash, provide, ours)
	if err != nil {
		nc.Close()
		return nil, Handshake{}, fmt.Errorf("p2p: handshake with %v: %w: %w", addrPortOf(nc.RemoteAddr()), ErrEncryptedHandshake, err)
	}
	c := newConn(mc)
	c.mse = mc.Method()
	return client(ctx, c, infoHash, peerID, opts, true)
}

// AcceptConfig says which handshakes AcceptWith takes.
type AcceptConfig struct {
	// Plaintext accepts a connection that begins with the plain BEP 3 handshake.
	Plaintext bool
	// Encrypted are the methods we may select in an MSE handshake (RC4 is preferred when the
	// peer provides both); 0 refuses MSE.
	Encrypted mse.Methods
	// SKey maps the hash an MSE initiator sends, HASH('req2', info hash) (mse.SKeyHash), to
	// the info hash. The BEP 3 handshake inside must then name that same info hash.
	SKey mse.SKeyLookup
}

// AcceptWith performs the handshake on an incoming connection as Accept does, after telling
// from its first 20 bytes whether it begins with a plain BEP 3 handshake (19, then
// "BitTorrent protocol") or an MSE key exchange, and taking only the kinds cfg allows. Both
// kinds of handshake are bounded by HandshakeTimeout. It takes ownership of nc: on error nc
// is closed.
func AcceptWith(nc net.Conn, peerID [20]byte, lookup func(infoHash [20]byte) (Options, bool), cfg AcceptConfig) (*Conn, Handshake, error) {
	remote := addrPortOf(nc.RemoteAddr())
	fail := func(err error) (*Conn, Handshake, error) {
		nc.Close()
		return nil, Handshake{}, fmt.Errorf("p2p: handshake from %v: %w", remote, err)
	}
	if err := nc.SetReadDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return fail(err)
	}
	first := make([]byte, 1+len(protocolString))
	if n, err := io.ReadFull(nc, first); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = protoErr("connection closed after %d bytes: %w", n, io.ErrUnexpectedEOF)
		}
		return fail(err)
	}
	pc := &prefixConn{Conn: nc, prefix: first}
	if first[0] == byte(len(protocolString)) && string(first[1:]) == protocolString {
		if !cfg.Plaintext {
			return fail(fmt.Errorf("%w: %w: plaintext, and encryption is required", ErrProtocol, ErrRefusedKind))
		}
		return accept(newConn(pc), peerID, lookup)
	}
	if cfg.Encrypted == 0 || cfg.SKey == nil {
		return fail(fmt.Errorf("%w: %w: not a BitTorrent handshake (%q...), and encryption is off", ErrProtocol, ErrRefusedKind, first[:8]))
	}
	mc, err := mse.Receive(context.Background(), pc, cfg.SKey, cfg.Encrypted)
	if err != nil {
		if errors.Is(err, mse.ErrProtocol) {
			err = fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return fail(err)
	}
	c := newConn(mc)
	c.mse = mc.Method()
	skey := mc.SKey()
	mismatch := false
	c, h, err := accept(c, peerID, func(ih [20]byte) (Options, bool) {
		if ih != skey {
			mismatch = true
			return Options{}, false
		}
		return lookup(ih)
	})
	if mismatch {
		return nil, Handshake{}, fmt.Errorf("p2p: handshake from %v: %w: %w: encrypted for %x, handshake for another torrent", remote, ErrProtocol, ErrInfoHashMismatch, skey)
	}
	return c, h, err
}

// prefixConn is a connection whose first bytes were already read: Read returns them first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// WriteSize passes on the connection's preferred write size (see writeSizer).
func (p *prefixConn) WriteSize() int { return preferredWriteSize(p.Conn) }

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
