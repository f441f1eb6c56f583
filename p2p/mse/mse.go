// Package mse implements Message Stream Encryption (MSE, also called PE, protocol
// encryption): the obfuscation handshake BitTorrent clients (libtorrent, transmission,
// aria2, Vuze, ...) put in front of the BEP 3 handshake.
//
// The exchange, A the side that opened the TCP connection and B the other:
//
//	1 A->B: Ya, PadA
//	2 B->A: Yb, PadB
//	3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//	        ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//	4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//	5 A->B: ENCRYPT2(payload)
//
// Ya and Yb are 768-bit Diffie-Hellman public keys (prime P, generator 2, private keys of
// 160 bits), S the shared secret, SKEY the torrent's info hash, HASH SHA-1, VC eight zero
// bytes, and ENCRYPT RC4 keyed with HASH('keyA', S, SKEY) for what A sends and
// HASH('keyB', S, SKEY) for what B sends, the first 1024 bytes of each key stream discarded.
// ENCRYPT2 is the method B selected: RC4 continues the same streams, plaintext ends them.
//
// [Initiate] is A's side, [Receive] B's; both return a [Conn] that encrypts and decrypts
// (or passes plaintext through, when that was selected). Everything the remote side sends is
// bounded: pads by 512 bytes, the search for HASH('req1', S) by 628 bytes from the start of
// the stream and the search for ENCRYPT(VC) by 616, IA by 65535; the handshake is bounded in
// time. Errors caused by the peer wrap [ErrProtocol].
//
// RC4 and a 768-bit group are weak by today's standards. MSE is obfuscation, not
// authentication; its purpose is to get past networks that throttle or block recognisable
// BitTorrent traffic, and it is what every peer speaks, so this package implements exactly
// what the specification says. (The modular exponentiation of math/big is not constant-time;
// for an ephemeral key that protects nothing secret that is of no concern.)
package mse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rc4" // MSE specifies RC4; the standard library's is deprecated for new protocols only.
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"
)

// Methods is a crypto_provide or crypto_select bitfield.
type Methods uint32

// The methods of the specification.
const (
	// Plaintext: after the handshake the payload goes unencrypted.
	Plaintext Methods = 0x01
	// RC4: the handshake's RC4 streams go on over the payload.
	RC4 Methods = 0x02
)

// String names the methods of m ("rc4", "plaintext", "rc4+plaintext", "none").
func (m Methods) String() string {
	switch m & (RC4 | Plaintext) {
	case RC4:
		return "rc4"
	case Plaintext:
		return "plaintext"
	case RC4 | Plaintext:
		return "rc4+plaintext"
	}
	return "none"
}

// Sizes and bounds of the specification.
const (
	// KeyLen is the length of a public key and of the shared secret: 768 bits.
	KeyLen = 96
	// MaxPad bounds PadA, PadB, PadC and PadD.
	MaxPad = 512
	// MaxIA bounds the initial payload (its length field has 2 bytes).
	MaxIA = 65535
	// HandshakeTimeout bounds a handshake when the context carries no earlier deadline.
	HandshakeTimeout = 20 * time.Second

	privateKeyLen = 20 // 160 bits, as the specification recommends
	hashLen       = sha1.Size
	vcLen         = 8
	rc4Discard    = 1024
	// req1Window is how far into the stream B looks for HASH('req1', S): Ya, PadA, the hash.
	req1Window = KeyLen + MaxPad + hashLen // 628
	// vcWindow is how far into the stream A looks for ENCRYPT(VC): Yb, PadB, VC.
	vcWindow = KeyLen + MaxPad + vcLen // 616
)

// The Diffie-Hellman group: the 768-bit safe prime of the specification (RFC 2409's first
// Oakley group) and generator 2.
var (
	dhPrime, _  = new(big.Int).SetString("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)
	dhGenerator = big.NewInt(2)
)

// btProtocol starts a plaintext BitTorrent handshake.
var btProtocol = []byte("\x13BitTorrent protocol")

// ErrProtocol is wrapped by every error caused by the remote side breaking the handshake:
// a public key out of range, no synchronisation point where one must be, a wrong VC, a pad
// longer than allowed, no method in common.
var ErrProtocol = errors.New("mse protocol violation")

// ErrUnknownSKey is returned (wrapped, together with ErrProtocol) by Receive when no stream
// matches the initiator's HASH('req2', SKEY).
var ErrUnknownSKey = errors.New("unknown stream (no torrent matches its hash)")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// SKeyHash returns HASH('req2', skey), what an initiator sends (masked by HASH('req3', S))
// so that the receiver can tell which torrent it wants: a receiver's lookup compares it with
// SKeyHash of each torrent it serves.
func SKeyHash(skey [20]byte) [20]byte { return hash([]byte("req2"), skey[:]) }

func hash(parts ...[]byte) [20]byte {
	h := sha1.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [20]byte
	h.Sum(out[:0])
	return out
}

// keyPair is one side's ephemeral Diffie-Hellman key.
type keyPair struct {
	private *big.Int
	public  [KeyLen]byte
}

// newKeyPair draws a 160-bit private key from rnd.
func newKeyPair(rnd io.Reader) (keyPair, error) {
	var b [privateKeyLen]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return keyPair{}, fmt.Errorf("mse: private key: %w", err)
	}
	k := keyPair{private: new(big.Int).SetBytes(b[:])}
	new(big.Int).Exp(dhGenerator, k.private, dhPrime).FillBytes(k.public[:])
	return k, nil
}

// secret returns S = Y^private mod P for the peer's public key Y, refusing a key outside
// 2..P-2 (0, 1 and P-1 would make S predictable).
func (k keyPair) secret(peer []byte) ([KeyLen]byte, error) {
	var s [KeyLen]byte
	y := new(big.Int).SetBytes(peer)
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(new(big.Int).Sub(dhPrime, big.NewInt(1))) >= 0 {
		return s, protoErr("public key out of range")
	}
	new(big.Int).Exp(y, k.private, dhPrime).FillBytes(s[:])
	return s, nil
}

// newCipher returns the RC4 stream keyed with HASH(name, S, SKEY), its first 1024 bytes
// discarded.
func newCipher(name string, s [KeyLen]byte, skey [20]byte) *rc4.Cipher {
	key := hash([]byte(name), s[:], skey[:])
	return discardCipher(key[:])
}

// discardCipher returns RC4 keyed with key (1 to 256 bytes) with the first 1024 bytes of
// its key stream discarded.
func discardCipher(key []byte) *rc4.Cipher {
	c, err := rc4.NewCipher(key)
	if err != nil {
		panic(err) // not reached: keys here are 20-byte hashes (tests: short constants)
	}
	var discard [rc4Discard]byte
	c.XORKeyStream(discard[:], discard[:])
	return c
}

// randomPadLen draws a pad length in 0..MaxPad from rnd.
func randomPadLen(rnd io.Reader) (int, error) {
	var b [2]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return 0, fmt.Errorf("mse: pad length: %w", err)
	}
	return int(binary.BigEndian.Uint16(b[:])) % (MaxPad + 1), nil
}

// appendKeyAndPad appends the public key and a random pad of random length (steps 1 and 2).
func appendKeyAndPad(dst []byte, k keyPair, rnd io.Reader) ([]byte, error) {
	n, err := randomPadLen(rnd)
	if err != nil {
		return nil, err
	}
	dst = append(dst, k.public[:]...)
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	if _, err := io.ReadFull(rnd, dst[start:]); err != nil {
		return nil, fmt.Errorf("mse: pad: %w", err)
	}
	return dst, nil
}

// appendMethodAndPad appends VC, the method field, len(pad) and a zeroed pad of random
// length: the start of steps 3 and 4, before encryption.
func appendMethodAndPad(dst []byte, m Methods, rnd io.Reader) ([]byte, error) {
	n, err := randomPadLen(rnd)
	if err != nil {
		return nil, err
	}
	dst = append(dst, make([]byte, vcLen)...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m))
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	return append(dst, make([]byte, n)...), nil
}

// session holds one handshake in progress.
type session struct {
	nc  net.Conn
	br  *bufio.Reader
	rnd io.Reader
	// read counts the bytes read from the stream since its start, for the sync windows.
	read int
}

func newSession(nc net.Conn, rnd io.Reader) *session {
	// 4 KiB holds a whole handshake message, so the searches never wait on a full buffer.
	return &session{nc: nc, br: bufio.NewReaderSize(nc, 4096), rnd: rnd}
}

// readFull reads exactly len(p) bytes; an early end of the stream is a protocol violation
// (the peer gave up on, or never spoke, MSE).
func (s *session) readFull(p []byte, what string) error {
	n, err := io.ReadFull(s.br, p)
	s.read += n
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return protoErr("connection closed while reading %s (%d of %d bytes): %w", what, n, len(p), err)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

// readDecrypted reads n bytes and decrypts them with c.
func (s *session) readDecrypted(c *rc4.Cipher, p []byte, what string) error {
	if err := s.readFull(p, what); err != nil {
		return err
	}
	c.XORKeyStream(p, p)
	return nil
}

// syncOn reads until the stream has delivered mark, which must end within window bytes of
// the stream's start.
func (s *session) syncOn(mark []byte, window int, what string) error {
	var seen []byte
	for {
		b, err := s.br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return protoErr("connection closed before %s (%d bytes read): %w", what, s.read, io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("read before %s: %w", what, err)
		}
		s.read++
		seen = append(seen, b)
		if bytes.HasSuffix(seen, mark) {
			return nil
		}
		if s.read >= window {
			return protoErr("no %s within the first %d bytes", what, window)
		}
	}
}

// readPad reads a 2-byte pad length (at most MaxPad) and skips the pad, decrypting both.
func (s *session) readPad(c *rc4.Cipher, what string) error {
	var l [2]byte
	if err := s.readDecrypted(c, l[:], what+" length"); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > MaxPad {
		return protoErr("%s of %d bytes, at most %d allowed", what, n, MaxPad)
	}
	var pad [MaxPad]byte
	return s.readDecrypted(c, pad[:n], what)
}

// sendKey makes our key pair and sends the public key and a random pad (step 1 or 2); it
// returns the message's buffer for reuse.
func (s *session) sendKey() (keyPair, []byte, error) {
	k, err := newKeyPair(s.rnd)
	if err != nil {
		return keyPair{}, nil, err
	}
	msg, err := appendKeyAndPad(make([]byte, 0, KeyLen+MaxPad), k, s.rnd)
	if err != nil {
		return keyPair{}, nil, err
	}
	if _, err := s.nc.Write(msg); err != nil {
		return keyPair{}, nil, fmt.Errorf("send public key: %w", err)
	}
	return k, msg, nil
}

// withDeadline runs f with the socket's deadline set to ctx's deadline or HandshakeTimeout,
// whichever comes first, and cut short when ctx ends; the deadline is cleared afterwards.
func withDeadline(ctx context.Context, nc net.Conn, f func() error) error {
	deadline := time.Now().Add(HandshakeTimeout)
	ctxDeadline, hasDeadline := ctx.Deadline()
	if hasDeadline && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	if err := nc.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	err := f()
	if err != nil && hasDeadline && !time.Now().Before(ctxDeadline) {
		// The socket deadline was ctx's and may have fired just before ctx noticed.
		stop()
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	if !stop() || ctx.Err() != nil {
		if err == nil {
			err = ctx.Err()
		} else {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return err
	}
	if err != nil {
		return err
	}
	return nc.SetDeadline(time.Time{})
}

// Initiate performs A's side of the handshake on nc (a connection we opened) for the stream
// skey (the info hash), offering the methods in provide, and sends ia (at most MaxIA bytes,
// typically the BEP 3 handshake) as the initial payload, so that it costs no extra round
// trip. It returns the connection carrying the payload stream; Method tells which method
// the peer selected. The handshake honours ctx and is bounded by HandshakeTimeout. Initiate
// does not close nc on error.
func Initiate(ctx context.Context, nc net.Conn, skey [20]byte, provide Methods, ia []byte) (*Conn, error) {
	return initiate(ctx, nc, skey, provide, ia, rand.Reader)
}

func initiate(ctx context.Context, nc net.Conn, skey [20]byte, provide Methods, ia []byte, rnd io.Reader) (*Conn, error) {
	if provide&(RC4|Plaintext) == 0 {
		return nil, fmt.Errorf("mse: no method to provide (%#x)", uint32(provide))
	}
	if len(ia) > MaxIA {
		return nil, fmt.Errorf("mse: initial payload of %d bytes, at most %d", len(ia), MaxIA)
	}
	var c *Conn
	err := withDeadline(ctx, nc, func() error {
		var err error
		c, err = newSession(nc, rnd).initiate(skey, provide, ia)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mse: handshake with %v: %w", nc.RemoteAddr(), err)
	}
	return c, nil
}

func (s *session) initiate(skey [20]byte, provide Methods, ia []byte) (*Conn, error) {
	k, msg, err := s.sendKey()
	if err != nil {
		return nil, err
	}
	if head, err := s.br.Peek(len(btProtocol)); err == nil && bytes.Equal(head, btProtocol) {
		// A plaintext-only peer that answered our key with its own handshake (which may be
		// shorter than a key: do not wait for more).
		return nil, protoErr("peer answered with a plaintext BitTorrent handshake")
	}
	var yb [KeyLen]byte
	if err := s.readFull(yb[:], "public key"); err != nil {
		return nil, err
	}
	secret, err := k.secret(yb[:])
	if err != nil {
		return nil, err
	}
	enc, dec := newCipher("keyA", secret, skey), newCipher("keyB", secret, skey)

	// Step 3.
	req1 := hash([]byte("req1"), secret[:])
	req2, req3 := SKeyHash(skey), hash([]byte("req3"), secret[:])
	msg = append(msg[:0], req1[:]...)
	for i := range req2 {
		msg = append(msg, req2[i]^req3[i])
	}
	start := len(msg)
	if msg, err = appendMethodAndPad(msg, provide, s.rnd); err != nil {
		return nil, err
	}
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(ia)))
	msg = append(msg, ia...)
	enc.XORKeyStream(msg[start:], msg[start:])
	if _, err := s.nc.Write(msg); err != nil {
		return nil, fmt.Errorf("send crypto_provide: %w", err)
	}

	// Step 4: find ENCRYPT(VC) after PadB, then crypto_select and PadD.
	vc := make([]byte, vcLen)
	newCipher("keyB", secret, skey).XORKeyStream(vc, vc)
	if err := s.syncOn(vc, vcWindow, "verification constant"); err != nil {
		return nil, err
	}
	dec.XORKeyStream(vc, vc) // keep dec in step with the stream: VC is behind us
	var sel [4]byte
	if err := s.readDecrypted(dec, sel[:], "crypto_select"); err != nil {
		return nil, err
	}
	selected := Methods(binary.BigEndian.Uint32(sel[:]))
	if (selected != RC4 && selected != Plaintext) || selected&provide == 0 {
		return nil, protoErr("peer selected method %#x, we provided %v", uint32(selected), provide)
	}
	if err := s.readPad(dec, "PadD"); err != nil {
		return nil, err
	}
	return newConn(s.nc, s.br, selected, skey, nil, enc, dec), nil
}

// SKeyLookup maps HASH('req2', SKEY) (see SKeyHash) to the SKEY (the info hash) of a stream
// the receiver serves; false refuses the connection.
type SKeyLookup func(req2 [20]byte) (skey [20]byte, ok bool)

// Receive performs B's side of the handshake on nc (a connection we accepted). lookup tells
// which stream the initiator wants; allowed are the methods we may select, plaintext
// preferred over RC4 when the initiator provides both (RC4 is selected when one side requires
// it: the initiator provides only RC4, or allowed is RC4 alone). The initial payload the initiator sent,
// if any, is the first thing read from the returned connection. The handshake honours ctx
// and is bounded by HandshakeTimeout. Receive does not close nc on error.
func Receive(ctx context.Context, nc net.Conn, lookup SKeyLookup, allowed Methods) (*Conn, error) {
	return receive(ctx, nc, lookup, allowed, rand.Reader)
}

func receive(ctx context.Context, nc net.Conn, lookup SKeyLookup, allowed Methods, rnd io.Reader) (*Conn, error) {
	var c *Conn
	err := withDeadline(ctx, nc, func() error {
		var err error
		c, err = newSession(nc, rnd).receive(lookup, allowed)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mse: handshake from %v: %w", nc.RemoteAddr(), err)
	}
	return c, nil
}

func (s *session) receive(lookup SKeyLookup, allowed Methods) (*Conn, error) {
	var ya [KeyLen]byte
	if err := s.readFull(ya[:], "public key"); err != nil {
		return nil, err
	}
	k, msg, err := s.sendKey()
	if err != nil {
		return nil, err
	}
	secret, err := k.secret(ya[:])
	if err != nil {
		return nil, err
	}

	// Step 3: find HASH('req1', S) after PadA, then the stream and crypto_provide.
	req1 := hash([]byte("req1"), secret[:])
	if err := s.syncOn(req1[:], req1Window, "HASH('req1', S)"); err != nil {
		return nil, err
	}
	var req2 [20]byte
	if err := s.readFull(req2[:], "stream hash"); err != nil {
		return nil, err
	}
	req3 := hash([]byte("req3"), secret[:])
	for i := range req2 {
		req2[i] ^= req3[i]
	}
	skey, ok := lookup(req2)
	if !ok {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, ErrUnknownSKey)
	}
	dec, enc := newCipher("keyA", secret, skey), newCipher("keyB", secret, skey)
	var head [vcLen + 4]byte
	if err := s.readDecrypted(dec, head[:], "crypto_provide"); err != nil {
		return nil, err
	}
	if !bytes.Equal(head[:vcLen], make([]byte, vcLen)) {
		return nil, protoErr("verification constant %x, want zeros (wrong key)", head[:vcLen])
	}
	provided := Methods(binary.BigEndian.Uint32(head[vcLen:]))
	if err := s.readPad(dec, "PadC"); err != nil {
		return nil, err
	}
	var l [2]byte
	if err := s.readDecrypted(dec, l[:], "len(IA)"); err != nil {
		return nil, err
	}
	ia := make([]byte, binary.BigEndian.Uint16(l[:])) // at most MaxIA
	if err := s.readDecrypted(dec, ia, "IA"); err != nil {
		return nil, err
	}
	// Plaintext when both sides allow it (the handshake was obfuscated all the same), as
	// libtorrent does by default: RC4 costs CPU on every byte, so it is used when one side
	// requires it.
	var selected Methods
	switch common := provided & allowed; {
	case common&Plaintext != 0:
		selected = Plaintext
	case common&RC4 != 0:
		selected = RC4
	default:
		return nil, protoErr("no method in common: peer provides %v, we allow %v", provided, allowed)
	}

	// Step 4.
	if msg, err = appendMethodAndPad(msg[:0], selected, s.rnd); err != nil {
		return nil, err
	}
	enc.XORKeyStream(msg, msg)
	if _, err := s.nc.Write(msg); err != nil {
		return nil, fmt.Errorf("send crypto_select: %w", err)
	}
	return newConn(s.nc, s.br, selected, skey, ia, enc, dec), nil
}
