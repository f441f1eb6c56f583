package p2p

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/torrentfile/bencode"
)

func TestMetadataMsgBEP9Examples(t *testing.T) {
	// The examples of BEP 9, byte for byte.
	req := "d8:msg_typei0e5:piecei0ee"
	data := bytes.Repeat([]byte{'x'}, MetadataPieceSize)
	dataMsg := "d8:msg_typei1e5:piecei0e10:total_sizei34256ee" + string(data)
	cases := []struct {
		wire string
		msg  MetadataMsg
	}{
		{req, MetadataMsg{Type: MetadataRequest, Piece: 0}},
		{dataMsg, MetadataMsg{Type: MetadataData, Piece: 0, TotalSize: 34256, Data: data}},
		// BEP 9's reject example has msg_type 1 (a typo); a reject is msg_type 2.
		{"d8:msg_typei2e5:piecei0ee", MetadataMsg{Type: MetadataReject, Piece: 0}},
	}
	for _, c := range cases {
		b, err := c.msg.Encode()
		if err != nil {
			t.Fatalf("%v: %v", c.msg.Type, err)
		}
		if string(b) != c.wire {
			t.Errorf("%v: Encode = %.60q, want %.60q", c.msg.Type, b, c.wire)
		}
		got, err := ParseMetadataMsg([]byte(c.wire))
		if err != nil {
			t.Fatalf("%v: %v", c.msg.Type, err)
		}
		if !reflect.DeepEqual(got, c.msg) {
			t.Errorf("%v: Parse = %+v", c.msg.Type, got)
		}
	}
	// The literal reject example reads as a data message without total_size.
	if _, err := ParseMetadataMsg([]byte("d8:msg_typei1e5:piecei0ee")); !errors.Is(err, ErrProtocol) {
		t.Errorf("BEP 9 reject typo: %v", err)
	}
}

func TestMetadataMsgRoundTrip(t *testing.T) {
	last := make([]byte, 100)
	for i := range last {
		last[i] = byte(i)
	}
	for _, m := range []MetadataMsg{
		{Type: MetadataRequest, Piece: 5},
		{Type: MetadataReject, Piece: maxMetadataPieces - 1},
		{Type: MetadataData, Piece: 0, TotalSize: 1, Data: []byte{'d'}},
		{Type: MetadataData, Piece: 2, TotalSize: 2*MetadataPieceSize + 100, Data: last},
		{Type: MetadataData, Piece: 1, TotalSize: 2 * MetadataPieceSize, Data: make([]byte, MetadataPieceSize)},
		{Type: MetadataData, Piece: maxMetadataPieces - 1, TotalSize: MaxMetadataSize, Data: make([]byte, MetadataPieceSize)},
	} {
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("%+v: %v", m.Type, err)
		}
		got, err := ParseMetadataMsg(b)
		if err != nil {
			t.Fatalf("%.80q: %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%.80q: got %v/%d/%d, want %v/%d/%d", b, got.Type, got.Piece, got.TotalSize, m.Type, m.Piece, m.TotalSize)
		}
		if m.Type == MetadataData && &got.Data[0] != &b[len(b)-len(m.Data)] {
			t.Errorf("Data does not alias the input")
		}
	}
}

func TestMetadataMsgEncodeInvalid(t *testing.T) {
	for _, m := range []MetadataMsg{
		{Type: 3},
		{Type: -1},
		{Type: MetadataRequest, Piece: -1},
		{Type: MetadataRequest, Piece: maxMetadataPieces},
		{Type: MetadataRequest, TotalSize: 5},
		{Type: MetadataReject, Data: []byte{1}},
		{Type: MetadataData, Piece: 0, TotalSize: 0},
		{Type: MetadataData, Piece: 0, TotalSize: MaxMetadataSize + 1, Data: make([]byte, MetadataPieceSize)},
		{Type: MetadataData, Piece: 1, TotalSize: 100, Data: make([]byte, 100)},
		{Type: MetadataData, Piece: 0, TotalSize: 100, Data: make([]byte, 99)},
		{Type: MetadataData, Piece: 0, TotalSize: 2 * MetadataPieceSize, Data: make([]byte, 100)},
	} {
		if b, err := m.Encode(); err == nil {
			t.Errorf("Encode(%v/%d/%d/%d bytes) = %.60q", m.Type, m.Piece, m.TotalSize, len(m.Data), b)
		}
	}
}

func TestParseMetadataMsgMalformed(t *testing.T) {
	full := strings.Repeat("x", MetadataPieceSize)
	cases := []struct{ name, in string }{
		{"empty", ""},
		{"not bencode", "hello"},
		{"list", "le"},
		{"integer", "i0e"},
		{"string", "4:spam"},
		{"unterminated dict", "d8:msg_typei0e5:piecei0e"},
		{"truncated key", "d8:msg_ty"},
		{"bad integer", "d8:msg_typei00e5:piecei0ee"},
		{"duplicate key", "d8:msg_typei0e8:msg_typei0e5:piecei0ee"},
		{"huge string length", "d99999999999:x"},
		{"deep nesting", "d1:x" + strings.Repeat("l", 100) + strings.Repeat("e", 100) + "e"},
		{"missing msg_type", "d5:piecei0ee"},
		{"missing piece", "d8:msg_typei0ee"},
		{"msg_type string", "d8:msg_type1:05:piecei0ee"},
		{"piece string", "d8:msg_typei0e5:piece1:0e"},
		{"piece list", "d8:msg_typei0e5:pieceli0eee"},
		{"negative msg_type", "d8:msg_typei-1e5:piecei0ee"},
		{"negative piece", "d8:msg_typei0e5:piecei-1ee"},
		{"piece over the cap", "d8:msg_typei0e5:piecei1024ee"},
		{"huge piece", "d8:msg_typei0e5:piecei9223372036854775807ee"},
		{"integer overflow", "d8:msg_typei0e5:piecei99999999999999999999ee"},
		{"request with trailing data", "d8:msg_typei0e5:piecei0eexyz"},
		{"reject with trailing data", "d8:msg_typei2e5:piecei0ee\x00"},
		{"data without total_size", "d8:msg_typei1e5:piecei0eex"},
		{"total_size string", "d8:msg_typei1e5:piecei0e10:total_size1:1ex"},
		{"total_size zero", "d8:msg_typei1e5:piecei0e10:total_sizei0ee"},
		{"total_size negative", "d8:msg_typei1e5:piecei0e10:total_sizei-5ee"},
		{"total_size over the cap", "d8:msg_typei1e5:piecei0e10:total_sizei16777217ee" + full},
		{"piece out of range", "d8:msg_typei1e5:piecei1e10:total_sizei100ee" + strings.Repeat("x", 100)},
		{"data too short", "d8:msg_typei1e5:piecei0e10:total_sizei100ee" + strings.Repeat("x", 99)},
		{"data too long", "d8:msg_typei1e5:piecei0e10:total_sizei100ee" + strings.Repeat("x", 101)},
		{"no data", "d8:msg_typei1e5:piecei0e10:total_sizei100ee"},
		{"short middle piece", "d8:msg_typei1e5:piecei0e10:total_sizei20000ee" + strings.Repeat("x", 3616)},
		{"long last piece", "d8:msg_typei1e5:piecei1e10:total_sizei20000ee" + full},
	}
	for _, c := range cases {
		m, err := ParseMetadataMsg([]byte(c.in))
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %+v, %v; want ErrProtocol", c.name, m.Type, err)
			continue
		}
		if !reflect.DeepEqual(m, MetadataMsg{}) {
			t.Errorf("%s: non-zero message with the error", c.name)
		}
		if testing.Verbose() {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if _, err := ParseMetadataMsg(make([]byte, MaxExtendedPayload+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversize: %v", err)
	}
}

func TestParseMetadataMsgTolerant(t *testing.T) {
	// Unknown keys, unsorted keys, and keys of the other message types are ignored.
	for _, in := range []string{
		"d5:piecei3e8:msg_typei0ee",
		"d8:msg_typei0e5:piecei3e10:total_sizei5ee",
		"d1:xli1ee8:msg_typei0e5:piecei3e1:z1:ye",
	} {
		m, err := ParseMetadataMsg([]byte(in))
		if err != nil || m.Type != MetadataRequest || m.Piece != 3 || m.TotalSize != 0 || m.Data != nil {
			t.Errorf("%q: %+v, %v", in, m, err)
		}
	}
	// An unknown msg_type is to be ignored (BEP 9): a distinct error, not a protocol one.
	_, err := ParseMetadataMsg([]byte("d8:msg_typei7e5:piecei0ee"))
	if !errors.Is(err, ErrUnknownMetadataMsgType) || errors.Is(err, ErrProtocol) {
		t.Errorf("unknown msg_type: %v", err)
	}
}

func TestMetadataPiece(t *testing.T) {
	info := make([]byte, 2*MetadataPieceSize+7)
	for i := range info {
		info[i] = byte(i * 7)
	}
	for i, want := range [][]byte{info[:MetadataPieceSize], info[MetadataPieceSize : 2*MetadataPieceSize], info[2*MetadataPieceSize:]} {
		got, err := MetadataPiece(info, i)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("piece %d: %d bytes, %v", i, len(got), err)
		}
		if cap(got) != len(got) {
			t.Errorf("piece %d: capacity beyond the piece", i)
		}
	}
	for _, i := range []int{-1, 3, 1 << 30} {
		if _, err := MetadataPiece(info, i); !errors.Is(err, ErrProtocol) {
			t.Errorf("piece %d: %v", i, err)
		}
	}
	if _, err := MetadataPiece(nil, 0); err == nil {
		t.Error("empty info served")
	}
	if _, err := MetadataPiece(make([]byte, MaxMetadataSize+1), 0); err == nil {
		t.Error("oversize info served")
	}
}

// infoOfSize returns a bencoded dictionary of exactly size bytes (size >= 30), with a
// pieces-like string of varied bytes in it.
func infoOfSize(size int) []byte {
	for n := size - 8; n > 0; n-- {
		b := fmt.Appendf(nil, "d4:name4:test6:pieces%d:", n)
		if len(b)+n+1 == size {
			for i := range n {
				b = append(b, byte(i*31+i>>8))
			}
			return append(b, 'e')
		}
	}
	panic("size too small")
}

func TestMetadataAssembly(t *testing.T) {
	mi, err := torrentfile.Load("../torrentfile/testdata/libtorrent/test_torrents/base.torrent")
	if err != nil {
		t.Fatal(err)
	}
	infos := map[string][]byte{
		"base.torrent": mi.InfoBytes,
		"1 piece":      infoOfSize(MetadataPieceSize),
		"2 pieces":     infoOfSize(2 * MetadataPieceSize),
		"3 pieces":     infoOfSize(2*MetadataPieceSize + 500),
	}
	for name, info := range infos {
		t.Run(name, func(t *testing.T) {
			ih := sha1.Sum(info)
			if name == "base.torrent" && ih != [20]byte(mi.InfoHash) {
				t.Fatal("InfoBytes does not hash to InfoHash")
			}
			md, err := NewMetadata(ih, len(info))
			if err != nil {
				t.Fatal(err)
			}
			n := md.NumPieces()
			if want := (len(info) + MetadataPieceSize - 1) / MetadataPieceSize; n != want || md.Size() != len(info) {
				t.Fatalf("NumPieces = %d, want %d", n, want)
			}
			// serve: peer side encodes data messages, we parse them and Put.
			fetch := func(corrupt int) {
				for _, i := range md.Missing() {
					req, _ := MetadataMsg{Type: MetadataRequest, Piece: i}.Encode()
					r, err := ParseMetadataMsg(req)
					if err != nil {
						t.Fatal(err)
					}
					p, err := MetadataPiece(info, r.Piece)
					if err != nil {
						t.Fatal(err)
					}
					if i == corrupt {
						p = bytes.Clone(p)
						p[len(p)/2] ^= 1
					}
					b, err := MetadataMsg{Type: MetadataData, Piece: i, TotalSize: len(info), Data: p}.Encode()
					if err != nil {
						t.Fatal(err)
					}
					d, err := ParseMetadataMsg(b)
					if err != nil {
						t.Fatal(err)
					}
					if md.Complete() {
						t.Fatal("complete too early")
					}
					if err := md.Put(d.Piece, d.Data); err != nil {
						t.Fatal(err)
					}
					clear(b) // Put must have copied
				}
			}
			if _, err := md.Verify(); !errors.Is(err, ErrMetadataIncomplete) {
				t.Fatalf("Verify on empty: %v", err)
			}
			fetch(n - 1)
			if !md.Complete() || len(md.Missing()) != 0 {
				t.Fatalf("not complete: missing %v", md.Missing())
			}
			if _, err := md.Verify(); !errors.Is(err, ErrMetadataMismatch) {
				t.Fatalf("corrupted: %v", err)
			}
			if md.Complete() || len(md.Missing()) != n {
				t.Fatalf("after a mismatch: complete %v, missing %v", md.Complete(), md.Missing())
			}
			fetch(-1)
			got, err := md.Verify()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, info) {
				t.Fatal("assembled bytes differ")
			}
			// Late pieces are ignored; Verify stays good.
			if err := md.Put(0, make([]byte, metadataPieceLen(len(info), 0))); err != nil {
				t.Fatal(err)
			}
			if again, err := md.Verify(); err != nil || !bytes.Equal(again, info) || md.Missing() != nil {
				t.Fatalf("after a late piece: %v", err)
			}
		})
	}
}

func TestMetadataPutInvalid(t *testing.T) {
	md, err := NewMetadata([20]byte{}, MetadataPieceSize+10)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		piece, n int
	}{{-1, MetadataPieceSize}, {2, 10}, {0, 10}, {0, MetadataPieceSize + 1}, {1, 11}, {1, 9}, {1, 0}} {
		if err := md.Put(c.piece, make([]byte, c.n)); !errors.Is(err, ErrProtocol) {
			t.Errorf("Put(%d, %d bytes): %v", c.piece, c.n, err)
		}
	}
	if !reflect.DeepEqual(md.Missing(), []int{0, 1}) {
		t.Errorf("Missing = %v", md.Missing())
	}
	if err := md.Put(1, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := md.Put(1, make([]byte, 10)); err != nil { // twice
		t.Fatal(err)
	}
	if !reflect.DeepEqual(md.Missing(), []int{0}) || md.Complete() {
		t.Errorf("Missing = %v", md.Missing())
	}
	for _, size := range []int{0, -1, MaxMetadataSize + 1} {
		if _, err := NewMetadata([20]byte{}, size); !errors.Is(err, ErrProtocol) {
			t.Errorf("NewMetadata(%d): %v", size, err)
		}
	}
	if md, err := NewMetadata([20]byte{}, MaxMetadataSize); err != nil || md.NumPieces() != maxMetadataPieces {
		t.Errorf("NewMetadata(max): %v", err)
	}
}

func FuzzMetadataMsg(f *testing.F) {
	for _, m := range []MetadataMsg{
		{Type: MetadataRequest, Piece: 1},
		{Type: MetadataReject, Piece: 0},
		{Type: MetadataData, Piece: 0, TotalSize: 5, Data: []byte("d1:ae")},
		{Type: MetadataData, Piece: 1, TotalSize: MetadataPieceSize + 3, Data: []byte("abc")},
	} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadataMsg(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrUnknownMetadataMsgType) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			return
		}
		if m.Piece < 0 || m.Piece >= maxMetadataPieces {
			t.Fatalf("piece %d", m.Piece)
		}
		if m.Type == MetadataData {
			if m.TotalSize <= 0 || m.TotalSize > MaxMetadataSize || len(m.Data) == 0 || len(m.Data) > MetadataPieceSize {
				t.Fatalf("data message %d/%d with %d bytes", m.Piece, m.TotalSize, len(m.Data))
			}
			// The assembler takes what the parser accepts.
			md, err := NewMetadata([20]byte{}, m.TotalSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := md.Put(m.Piece, m.Data); err != nil {
				t.Fatal(err)
			}
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("parsed %v/%d/%d does not encode: %v", m.Type, m.Piece, m.TotalSize, err)
		}
		m2, err := ParseMetadataMsg(b)
		if err != nil {
			t.Fatalf("re-parsing %.80q: %v", b, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v became %+v", m, m2)
		}
	})
}

func TestInfoOfSize(t *testing.T) {
	for _, n := range []int{30, 100, MetadataPieceSize, 2*MetadataPieceSize + 500} {
		b := infoOfSize(n)
		if len(b) != n {
			t.Fatalf("infoOfSize(%d) has %d bytes", n, len(b))
		}
		if _, err := bencode.DecodeValue(b); err != nil {
			t.Fatal(err)
		}
	}
}
