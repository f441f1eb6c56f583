package p2p

import (
	"bytes"
	"errors"
	"testing"
)

// TestNextBufferedPiece: after a ReadMessage, the piece messages already whole in the read
// buffer come out without a read, every payload still intact; a non-piece message, a piece
// not wholly buffered and an empty buffer end the run without consuming anything, and a
// malformed piece in the buffer is a protocol error.
func TestNextBufferedPiece(t *testing.T) {
	block := func(b byte) []byte { return bytes.Repeat([]byte{b}, BlockSize) }
	msgs := []Message{
		{ID: MsgPiece, Index: 1, Begin: 0, Payload: block(1)},
		{ID: MsgPiece, Index: 1, Begin: BlockSize, Payload: block(2)},
		{ID: MsgPiece, Index: 2, Begin: 0, Payload: block(3)},
		{ID: MsgHave, Index: 4},
		{ID: MsgPiece, Index: 3, Begin: 0, Payload: block(4)},
	}
	c, mc := connOver(encode(t, msgs...), testOpts(), false)
	m, err := c.ReadMessage()
	if err != nil || m.ID != MsgPiece || m.Index != 1 {
		t.Fatalf("first ReadMessage = %v, %v", m, err)
	}
	got := []Message{m}
	for {
		m, ok, err := c.NextBufferedPiece()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, m)
	}
	if len(got) != 3 {
		t.Fatalf("took %d pieces from the buffer run, want 3 (up to the have)", len(got))
	}
	for k, m := range got {
		if m.Index != msgs[k].Index || m.Begin != msgs[k].Begin || !bytes.Equal(m.Payload, msgs[k].Payload) {
			t.Errorf("piece %d of the run: %d+%d, payload intact %v", k, m.Index, m.Begin, bytes.Equal(m.Payload, msgs[k].Payload))
		}
	}
	// The have is next, for ReadMessage; then the last piece, which the buffer holds whole.
	if m, err := c.ReadMessage(); err != nil || m.ID != MsgHave || m.Index != 4 {
		t.Fatalf("after the run: %v, %v, want the have", m, err)
	}
	if m, ok, err := c.NextBufferedPiece(); !ok || err != nil || m.Index != 3 {
		t.Fatalf("NextBufferedPiece after the have = %v, %v, %v", m, ok, err)
	}
	if _, ok, err := c.NextBufferedPiece(); ok || err != nil {
		t.Fatalf("NextBufferedPiece on an empty buffer = %v, %v", ok, err)
	}
	if mc.pos != len(mc.data) {
		t.Fatalf("read %d of %d bytes", mc.pos, len(mc.data))
	}

	// A piece that is only partly buffered stays for ReadMessage.
	data := encode(t, msgs[0], msgs[1])
	c, mc = connOver(data, testOpts(), false)
	mc.data = data[:len(data)-100] // the rest never comes
	if _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.NextBufferedPiece(); ok || err != nil {
		t.Fatalf("NextBufferedPiece of a partial piece = %v, %v", ok, err)
	}

	// A piece message too long for a block, whole in the buffer, is refused.
	bad := append(encode(t, msgs[3]), frame(9+BlockSize+1, byte(MsgPiece), make([]byte, 8+BlockSize+1)...)...)
	c, _ = connOver(bad, testOpts(), false)
	if _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.NextBufferedPiece(); ok || !errors.Is(err, ErrProtocol) {
		t.Fatalf("NextBufferedPiece of an oversized piece = %v, %v, want a protocol error", ok, err)
	}
}
