package bencode

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	deep := strings.Repeat("l", MaxDepth) + strings.Repeat("e", MaxDepth)
	tooDeep := strings.Repeat("l", MaxDepth+1) + strings.Repeat("e", MaxDepth+1)
	tests := []struct {
		in string
		ok bool
	}{
		// Well formed.
		{"i0e", true},
		{"i42e", true},
		{"i-42e", true},
		{"i9223372036854775807e", true},
		{"i-9223372036854775808e", true},
		{"0:", true},
		{"3:foo", true},
		{"06:foobar", true}, // leading zeros in a string length: tolerated, as libtorrent does
		{"le", true},
		{"de", true},
		{"li1e3:fooe", true},
		{"d3:bar3:baz3:fooi1ee", true},
		{"d3:fooi1e3:bar3:baze", true}, // unsorted keys: tolerated
		{"d1:ad1:bi1e1:ci2eee", true},
		{"d0:i1ee", true}, // empty key
		{deep, true},
		{"3:\x00\xff\n", true},

		// Integers.
		{"i-0e", false},
		{"i+5e", false},
		{"i-e", false},
		{"ie", false},
		{"i03e", false},
		{"i-03e", false},
		{"i00e", false},
		{"i1.5e", false},
		{"i 1e", false},
		{"i1 e", false},
		{"i9223372036854775808e", false},
		{"i-9223372036854775809e", false},
		{"i99999999999999999999999e", false},
		{"i12", false},
		{"i", false},

		// Strings.
		{"-1:a", false},
		{"+1:a", false},
		{"1a:a", false},
		{"4:foo", false},
		{"99999999999999999999999:a", false},
		{"3", false},
		{"3:", false},
		{":a", false},

		// Containers.
		{"l", false},
		{"li1e", false},
		{"d", false},
		{"d3:foo", false},
		{"d3:fooe", false},
		{"di1ei2ee", false},
		{"dle3:fooe", false},
		{"d3:fooi1e3:fooi2ee", false},              // duplicate key, sorted path
		{"d3:fooi1e3:bari2e3:fooi3ee", false},      // duplicate key, unsorted path
		{"d1:bi1e1:ad1:xi1e1:xi2ee1:ci1ee", false}, // duplicate in a nested dict
		{"d1:bd1:xi1e1:ai1e1:xi2eee", false},       // duplicate in a nested unsorted dict
		{tooDeep, false},
		{"e", false},
		{"x", false},

		// Whole input.
		{"", false},
		{"i1ei2e", false},
		{"3:foox", false},
		{"de\n", false},
	}
	for _, tt := range tests {
		err := Check([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("Check(%.40q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
		var se *SyntaxError
		if err != nil && !errors.As(err, &se) {
			t.Errorf("Check(%.40q) error %v is not a *SyntaxError", tt.in, err)
		}
	}
}

func TestCheckTruncated(t *testing.T) {
	full := "d8:announce3:url4:infod6:lengthi10e4:name1:a12:piece lengthi16384e6:pieces0:ee"
	if err := Check([]byte(full)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(full); i++ {
		err := Check([]byte(full[:i]))
		if err == nil {
			t.Fatalf("Check(%q) accepted a truncated value", full[:i])
		}
		if !errors.Is(err, ErrTruncated) && i > 0 {
			// every prefix of a valid value is a truncation, never another error
			t.Errorf("Check(%q) = %v, want a truncation error", full[:i], err)
		}
	}
}

func TestCheckNoAllocs(t *testing.T) {
	data := []byte("d8:announce3:url4:infod6:lengthi10e4:name1:a12:piece lengthi16384e6:pieces0:ee")
	if n := testing.AllocsPerRun(100, func() { _ = Check(data) }); n != 0 {
		t.Errorf("Check allocates %v times per run, want 0", n)
	}
}

func TestDictValue(t *testing.T) {
	data := []byte("d1:zi1e4:infod1:bi1e1:ai2ee1:ali1ei2eee")
	tests := []struct {
		key   string
		want  string
		found bool
	}{
		{"info", "d1:bi1e1:ai2ee", true},
		{"z", "i1e", true},
		{"a", "li1ei2ee", true},
		{"b", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, found, err := DictValue(data, tt.key)
		if err != nil || found != tt.found || string(got) != tt.want {
			t.Errorf("DictValue(%q) = %q, %v, %v; want %q, %v", tt.key, got, found, err, tt.want, tt.found)
		}
	}
	if _, _, err := DictValue([]byte("li1ee"), "a"); err == nil {
		t.Error("DictValue on a list: no error")
	}
	if _, _, err := DictValue([]byte("d1:ai1e"), "a"); err == nil {
		t.Error("DictValue on a truncated dict: no error")
	}
}

type sample struct {
	Name   string   `bencode:"name"`
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
	Sub    struct {
		X int64 `bencode:"x"`
	} `bencode:"sub"`
}

func TestDecode(t *testing.T) {
	var s sample
	if err := Decode([]byte("d6:lengthi7e4:name3:foo4:pathl1:a1:be3:subd1:xi-3eee"), &s); err != nil {
		t.Fatal(err)
	}
	if s.Name != "foo" || s.Length != 7 || !reflect.DeepEqual(s.Path, []string{"a", "b"}) || s.Sub.X != -3 {
		t.Errorf("Decode = %+v", s)
	}
	bad := []string{
		"d4:namei5ee",    // integer into a string field: bencode-go panics, we return an error
		"d4:name3:fooe5", // trailing garbage
		"d4:name3:foo4:name3:bare",
		"i-0e",
	}
	for _, in := range bad {
		var s sample
		if err := Decode([]byte(in), &s); err == nil {
			t.Errorf("Decode(%q) = nil error", in)
		}
	}
	if err := Decode([]byte("i1e"), nil); err == nil {
		t.Error("Decode into nil: no error")
	}
	var notPtr sample
	if err := Decode([]byte("de"), notPtr); err == nil {
		t.Error("Decode into a non-pointer: no error")
	}
}

func TestDecodeValue(t *testing.T) {
	v, err := DecodeValue([]byte("d1:ai1e1:bl3:fooi-2eee"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(1), "b": []any{"foo", int64(-2)}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("DecodeValue = %#v, want %#v", v, want)
	}
	if _, err := DecodeValue([]byte("i+1e")); err == nil {
		t.Error("DecodeValue(i+1e) = nil error")
	}
}

func TestMarshal(t *testing.T) {
	got, err := Marshal(map[string]any{
		"b": int64(1),
		"a": []any{"x", 2},
		"c": []byte("raw"),
		"d": map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "d1:al1:xi2ee1:bi1e1:c3:raw1:ddee"; string(got) != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
	for _, v := range []any{nil, true, 1.5, map[int]int{1: 1}, func() {}} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%T) = nil error", v)
		}
	}
	// Round trip through Decode.
	in := sample{Name: "n", Length: 3, Path: []string{"p"}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out sample
	if err := Decode(b, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: %v, %+v != %+v", err, out, in)
	}
	if !bytes.HasPrefix(b, []byte("d6:length")) {
		t.Errorf("Marshal(struct) = %q: keys not sorted", b)
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"i0e", "i-1e", "3:foo", "06:foobar", "li1ee", "d1:ai1e1:b0:e", "d1:bi1e1:ai2ee", "d1:ai1e1:ai2ee", "i-0e", "lli1eee"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		end, serr := Span(data, 0)
		if err == nil {
			if serr != nil || end != len(data) {
				t.Fatalf("Check ok but Span = %d, %v", end, serr)
			}
			// Whatever passes Check must decode generically without error.
			if _, derr := DecodeValue(data); derr != nil {
				t.Fatalf("Check ok but DecodeValue: %v", derr)
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"d6:lengthi7e4:name3:foo4:pathl1:a1:be3:subd1:xi-3eee", "d4:namei5ee", "d3:subl1:xee", "d4:pathd1:ai1eee"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		_ = Decode(data, &s)
		var m map[string]any
		_ = Decode(data, &m)
		var l []any
		_ = Decode(data, &l)
		if v, err := DecodeValue(data); err == nil {
			// Generic values re-encode to something valid.
			b, err := Marshal(v)
			if err != nil {
				t.Fatalf("Marshal(DecodeValue(%q)): %v", data, err)
			}
			if err := Check(b); err != nil {
				t.Fatalf("re-encoded %q is invalid: %v", b, err)
			}
		}
	})
}
