package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func allMessages() []Message {
	block := bytes.Repeat([]byte{0xab}, BlockSize)
	bf := NewBitfield(10)
	bf.Set(3)
	bf.Set(9)
	return []Message{
		KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested(),
		Have(7), BitfieldMsg(bf),
		Request(1, BlockSize, BlockSize), Cancel(2, 0, 100),
		Piece(3, BlockSize, block), Piece(9, 0, block[:1000]), Piece(0, 5, []byte{1}),
		Port(6881), Extended(0, []byte("d1:md6:ut_pexi1eee")), Extended(3, nil),
		SuggestPiece(4), HaveAll(), HaveNone(), RejectRequest(5, 0, BlockSize), AllowedFast(6),
	}
}

func TestRoundTrip(t *testing.T) {
	msgs := allMessages()
	// Write through a Conn; the bytes must equal AppendMessage's.
	w, wc := connOver(nil, testOpts(), true)
	for _, m := range msgs {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	wire := encode(t, msgs...)
	if !bytes.Equal(wc.out.Bytes(), wire) {
		t.Fatal("WriteMessage bytes differ from AppendMessage bytes")
	}
	r, _ := connOver(wire, testOpts(), true)
	for _, want := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("reading %v: %v", want, err)
		}
		if want.ID == MsgPiece {
			want.Length = 0
		}
		if len(want.Payload) == 0 {
			want.Payload = nil
		}
		if len(got.Payload) == 0 {
			got.Payload = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		if got.String() == "" {
			t.Fatal("empty String")
		}
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestKnownEncodings(t *testing.T) {
	cases := []struct {
		m    Message
		want string
	}{
		{KeepAlive(), "00000000"},
		{Choke(), "0000000100"},
		{Interested(), "0000000102"},
		{Have(0x01020304), "000000050401020304"},
		{Request(1, 0x4000, 0x4000), "0000000d06000000010000400000004000"},
		{Piece(2, 3, []byte{0xaa, 0xbb}), "0000000b07000000020000000" + "3aabb"},
		{Port(0x1ae1), "00000003091ae1"},
		{Extended(1, []byte{'d', 'e'}), "000000041401" + "6465"},
		{BitfieldMsg([]byte{0xf0}), "0000000205f0"},
	}
	for _, c := range cases {
		b, err := AppendMessage(nil, c.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := hexs(b); got != c.want {
			t.Errorf("%v: got %s, want %s", c.m, got, c.want)
		}
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, x := range b {
		sb.WriteByte(digits[x>>4])
		sb.WriteByte(digits[x&15])
	}
	return sb.String()
}

// frame builds a raw frame with an arbitrary length prefix.
func frame(length uint32, id byte, body ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, id)
	return append(b, body...)
}

func u32s(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

func TestFramingLimits(t *testing.T) {
	block := make([]byte, BlockSize+1)
	cases := []struct {
		name  string
		data  []byte
		fast  bool
		opts  *Options // nil = testOpts()
		want  Message  // when ok
		proto bool     // want ErrProtocol; else want success
	}{
		{name: "4 GiB piece", data: frame(0xffffffff, 7), proto: true},
		{name: "4 GiB bitfield", data: frame(0xffffffff, 5), proto: true},
		{name: "4 GiB extended", data: frame(0xffffffff, 20), proto: true},
		{name: "4 GiB unknown", data: frame(0xffffffff, 99), proto: true},
		{name: "4 GiB choke", data: frame(0xffffffff, 0), proto: true},
		{name: "oversize piece", data: frame(9+BlockSize+1, 7, append(u32s(0, 0), block...)...), proto: true},
		{name: "max piece", data: frame(9+BlockSize, 7, append(u32s(0, 0), block[:BlockSize]...)...),
			want: Piece(0, 0, block[:BlockSize])},
		{name: "empty piece", data: frame(9, 7, u32s(0, 0)...), proto: true},
		{name: "short piece", data: frame(5, 7, u32s(0)...), proto: true},
		{name: "piece past end", data: frame(9+1000, 7, append(u32s(9, 1), block[:1000]...)...), proto: true},
		{name: "piece at end", data: frame(9+1000, 7, append(u32s(9, 0), block[:1000]...)...),
			want: Piece(9, 0, block[:1000])},
		{name: "piece index out of range", data: frame(10, 7, append(u32s(10, 0), 1)...), proto: true},
		{name: "piece begin overflow", data: frame(10, 7, append(u32s(0, 0xffffffff), 1)...), proto: true},
		{name: "bitfield short", data: frame(2, 5, 0xff), proto: true},
		{name: "bitfield long", data: frame(4, 5, 0xff, 0xc0, 0), proto: true},
		{name: "bitfield spare bits", data: frame(3, 5, 0xff, 0xe0), proto: true},
		{name: "bitfield ok", data: frame(3, 5, 0xff, 0xc0), want: BitfieldMsg([]byte{0xff, 0xc0})},
		{name: "have in range", data: frame(5, 4, u32s(9)...), want: Have(9)},
		{name: "have out of range", data: frame(5, 4, u32s(10)...), proto: true},
		{name: "have short", data: frame(4, 4, 0, 0, 0), proto: true},
		{name: "have long", data: frame(6, 4, 0, 0, 0, 0, 0), proto: true},
		{name: "request ok", data: frame(13, 6, u32s(0, BlockSize, BlockSize)...), want: Request(0, BlockSize, BlockSize)},
		{name: "request over 16 KiB", data: frame(13, 6, u32s(0, 0, BlockSize+1)...), proto: true},
		{name: "request zero", data: frame(13, 6, u32s(0, 0, 0)...), proto: true},
		{name: "request past piece end", data: frame(13, 6, u32s(9, 0, 1001)...), proto: true},
		{name: "request begin overflow", data: frame(13, 6, u32s(0, 0xffffff00, 0x200)...), proto: true},
		{name: "request index out of range", data: frame(13, 6, u32s(10, 0, 1)...), proto: true},
		{name: "request short", data: frame(9, 6, u32s(0, 0)...), proto: true},
		{name: "cancel over 16 KiB", data: frame(13, 8, u32s(0, 0, BlockSize+1)...), proto: true},
		{name: "cancel past piece end", data: frame(13, 8, u32s(0, 32*1024-1, 2)...), proto: true},
		{name: "cancel ok", data: frame(13, 8, u32s(9, 999, 1)...), want: Cancel(9, 999, 1)},
		{name: "choke with body", data: frame(2, 0, 0), proto: true},
		{name: "port", data: frame(3, 9, 0x1a, 0xe1), want: Port(6881)},
		{name: "port short", data: frame(2, 9, 0x1a), proto: true},
		{name: "extended without id", data: frame(1, 20), proto: true},
		{name: "extended too big", data: frame(2+MaxExtendedPayload+1, 20), proto: true},
		{name: "extended empty payload", data: frame(2, 20, 5), want: Extended(5, nil)},
		{name: "unknown skipped", data: append(frame(11, 42, make([]byte, 10)...), frame(5, 4, u32s(1)...)...), want: Have(1)},
		{name: "unknown empty skipped", data: append(frame(1, 200), frame(1, 1)...), want: Unchoke()},
		{name: "unknown too big", data: frame(1+MaxUnknownMessage+1, 42), proto: true},
		{name: "fast without negotiation", data: frame(1, 14), proto: true},
		{name: "suggest without negotiation", data: frame(5, 13, u32s(1)...), proto: true},
		{name: "have all", data: frame(1, 14), fast: true, want: HaveAll()},
		{name: "have none long", data: frame(2, 15, 0), fast: true, proto: true},
		{name: "reject ok", data: frame(13, 16, u32s(1, 0, 5)...), fast: true, want: RejectRequest(1, 0, 5)},
		{name: "reject over 16 KiB", data: frame(13, 16, u32s(1, 0, BlockSize+1)...), fast: true, proto: true},
		{name: "allowed fast out of range", data: frame(5, 17, u32s(10)...), fast: true, proto: true},
		{name: "keep-alive", data: []byte{0, 0, 0, 0}, want: KeepAlive()},
		// Number of pieces unknown (magnet): indexes cannot be checked, sizes still are.
		{name: "magnet have", data: frame(5, 4, u32s(1<<30)...), opts: &Options{}, want: Have(1 << 30)},
		{name: "magnet bitfield", data: frame(4, 5, 1, 2, 3), opts: &Options{}, want: BitfieldMsg([]byte{1, 2, 3})},
		{name: "magnet bitfield too big", data: frame(MaxBitfieldUnknown+2, 5), opts: &Options{}, proto: true},
		{name: "magnet request", data: frame(13, 6, u32s(1<<30, 0, BlockSize)...), opts: &Options{}, want: Request(1<<30, 0, BlockSize)},
		{name: "magnet request over 16 KiB", data: frame(13, 6, u32s(1, 0, BlockSize+1)...), opts: &Options{}, proto: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := testOpts()
			if c.opts != nil {
				opts = *c.opts
			}
			r, _ := connOver(c.data, opts, c.fast)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			got, err := r.ReadMessage()
			runtime.ReadMemStats(&ms)
			if c.proto {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("got %v, %v; want ErrProtocol", got, err)
				}
				if alloc := ms.TotalAlloc - before; alloc > 64<<10 {
					t.Fatalf("rejecting allocated %d bytes", alloc)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want.ID == MsgPiece {
				c.want.Length = 0
			}
			if len(got.Payload) == 0 {
				got.Payload = nil
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	full := encode(t, Piece(0, 0, make([]byte, 100)))
	for _, n := range []int{1, 3, 4, 5, 8, 13, len(full) - 1} {
		r, _ := connOver(full[:n], testOpts(), false)
		_, err := r.ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrProtocol) {
			t.Errorf("%d of %d bytes: %v, want io.ErrUnexpectedEOF (an I/O error)", n, len(full), err)
		}
	}
	r, _ := connOver(nil, testOpts(), false)
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
}

func TestSetNumPieces(t *testing.T) {
	data := encode(t, Have(5), Have(5), BitfieldMsg([]byte{1, 2, 3}))
	r, _ := connOver(data, Options{}, false)
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	r.SetNumPieces(5)
	if _, err := r.ReadMessage(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("have 5 of 5 pieces: %v, want ErrProtocol", err)
	}
	r, _ = connOver(data[18:], Options{}, false)
	r.SetNumPieces(24)
	r.SetPieceSize(func(uint32) uint32 { return 1 })
	if m, err := r.ReadMessage(); err != nil || m.ID != MsgBitfield {
		t.Fatalf("bitfield for 24 pieces: %v, %v", m, err)
	}
}

func TestLargePayload(t *testing.T) {
	// Bitfields and extended messages larger than the read buffer use the payload buffer.
	n := 8 * (readBufferSize + 100)
	bf := NewBitfield(n)
	bf.Set(n - 1)
	ext := bytes.Repeat([]byte("x"), MaxExtendedPayload)
	data := encode(t, BitfieldMsg(bf), Extended(1, ext), Have(1))
	r, _ := connOver(data, Options{NumPieces: n}, false)
	m, err := r.ReadMessage()
	if err != nil || !bytes.Equal(m.Payload, bf) {
		t.Fatalf("bitfield: %v %v", m, err)
	}
	m, err = r.ReadMessage()
	if err != nil || !bytes.Equal(m.Payload, ext) || m.ExtendedID != 1 {
		t.Fatalf("extended: %v %v", m, err)
	}
	if m, err = r.ReadMessage(); err != nil || m.ID != MsgHave || m.Index != 1 {
		t.Fatalf("have: %v %v", m, err)
	}
}

func TestReadAllocs(t *testing.T) {
	data := encode(t, Piece(1, 0, make([]byte, BlockSize)), Have(3), KeepAlive(),
		Request(2, 0, BlockSize), Extended(1, []byte("d1:ai1ee")), Piece(9, 0, make([]byte, 1000)))
	mc := &memConn{data: data, repeat: true}
	c := newConn(mc)
	c.configure(testOpts(), false)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadMessage allocates %v times per message", allocs)
	}
}

func TestWriteAllocs(t *testing.T) {
	c, mc := connOver(nil, testOpts(), true)
	mc.drop = true
	block := make([]byte, BlockSize)
	msgs := allMessages()
	allocs := testing.AllocsPerRun(200, func() {
		for _, m := range msgs {
			if err := c.WriteMessage(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WriteMessage(Piece(1, 0, block)); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("WriteMessage allocates %v times per round", allocs)
	}
}
