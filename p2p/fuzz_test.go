package p2p

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// The seed corpora live in testdata/fuzz; f.Add adds a few more built from the encoder.

func FuzzReadMessage(f *testing.F) {
	f.Add(encode(f, allMessages()...), true)
	f.Add(encode(f, Have(3), BitfieldMsg([]byte{0xff, 0xc0}), Request(9, 0, 1000)), false)
	// Conns are reused across executions (a worker runs them one at a time): allocating
	// their buffers per execution slows fuzzing down a lot.
	c, mc := connOver(nil, Options{}, false)
	re, rmc := connOver(nil, Options{}, false)
	f.Fuzz(func(t *testing.T, data []byte, fast bool) {
		for _, opts := range []Options{testOpts(), {}} {
			mc.data, mc.pos = data, 0
			c.br.Reset(&c.dr)
			c.configure(opts, fast)
			re.configure(opts, fast)
			for i := 0; i < 1000; i++ {
				m, err := c.ReadMessage()
				if err != nil {
					if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("unexpected error kind: %v", err)
					}
					break
				}
				checkInvariants(t, m, opts, re, rmc)
			}
		}
	})
}

// checkInvariants checks what ReadMessage promises about a message it returned, and that
// the message re-encodes and decodes to itself.
// re is a Conn over rmc, reused to re-read the encoded message.
func checkInvariants(t *testing.T, m Message, opts Options, re *Conn, rmc *memConn) {
	t.Helper()
	switch m.ID {
	case MsgPiece:
		if len(m.Payload) == 0 || len(m.Payload) > BlockSize {
			t.Fatalf("piece with %d bytes", len(m.Payload))
		}
	case MsgRequest, MsgCancel, MsgRejectRequest:
		if m.Length == 0 || m.Length > BlockSize {
			t.Fatalf("%v", m)
		}
	case MsgBitfield:
		if opts.NumPieces > 0 {
			if err := ValidateBitfield(m.Payload, opts.NumPieces); err != nil {
				t.Fatal(err)
			}
		}
	case MsgExtended:
		if len(m.Payload) > MaxExtendedPayload {
			t.Fatalf("extended payload of %d bytes", len(m.Payload))
		}
	}
	if opts.NumPieces > 0 && !m.KeepAlive {
		switch m.ID {
		case MsgHave, MsgRequest, MsgCancel, MsgPiece:
			if int(m.Index) >= opts.NumPieces {
				t.Fatalf("%v: index out of range", m)
			}
		}
	}
	b, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	rmc.data, rmc.pos = b, 0
	re.br.Reset(&re.dr)
	m2, err := re.ReadMessage()
	if err != nil {
		t.Fatalf("re-reading %v: %v", m, err)
	}
	if len(m.Payload) == 0 {
		m.Payload = nil
	}
	if len(m2.Payload) == 0 {
		m2.Payload = nil
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("re-encoded %v reads as %v", m, m2)
	}
}

func FuzzHandshake(f *testing.F) {
	f.Add(rawHandshake(protocolString, testHash, peerB))
	f.Add(append(rawHandshake(protocolString, testHash, peerB), encode(f, Have(1))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= HandshakeLen {
			h, err := ParseHandshake(data[:HandshakeLen])
			if err == nil && !bytes.Equal(AppendHandshake(nil, h), data[:HandshakeLen]) {
				t.Fatal("ParseHandshake does not round-trip")
			}
		}
		// As the initiator: the peer's answer is data.
		mc := &memConn{data: data}
		c, h, err := Client(t.Context(), mc, testHash, peerA, testOpts())
		if err == nil {
			if h.InfoHash != testHash || h.PeerID == peerA {
				t.Fatalf("Client accepted %+v", h)
			}
			ours := AppendHandshake(nil, Handshake{Reserved: testOpts().Reserved, InfoHash: testHash, PeerID: peerA})
			if !bytes.Equal(mc.out.Bytes(), ours) {
				t.Fatalf("Client sent %q", mc.out.Bytes())
			}
			for i := 0; i < 100; i++ {
				if _, err := c.ReadMessage(); err != nil {
					break
				}
			}
		}
		// As the acceptor: the peer's handshake is data.
		mc = &memConn{data: data}
		c, h, err = Accept(mc, peerB, func(ih [20]byte) (Options, bool) { return testOpts(), ih == testHash })
		if err == nil {
			if h.InfoHash != testHash || h.PeerID == peerB {
				t.Fatalf("Accept accepted %+v", h)
			}
			for i := 0; i < 100; i++ {
				if _, err := c.ReadMessage(); err != nil {
					break
				}
			}
		}
	})
}

func FuzzExtHandshake(f *testing.F) {
	f.Add([]byte("d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5000e1:pi6881e4:reqqi500e1:v5:gotfs6:yourip4:\x7f\x00\x00\x01e"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseExtHandshake(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error does not wrap ErrProtocol: %v", err)
			}
			return
		}
		b, err := h.Encode()
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", h, err)
		}
		h2, err := ParseExtHandshake(b)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", b, err)
		}
		if h.M == nil {
			h.M = map[string]int{}
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip: %+v became %+v", h, h2)
		}
	})
}
