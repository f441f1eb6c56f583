// Package bencode validates and encodes bencoded data (BEP 3).
//
// github.com/jackpal/bencode-go is lax: it accepts "i-0e", "i+5e", duplicate keys, trailing
// garbage and more. This package puts a strict, allocation-free, non-recursive scanner in front
// of it: Check validates the raw bytes, and Decode only hands bytes that passed Check to
// bencode-go.
//
// The syntax accepted is BEP 3 with two tolerances, both of which libtorrent also has and both
// of which appear in real .torrent files:
//   - dictionary keys need not be sorted (but a key may not appear twice in one dictionary);
//   - string lengths may have leading zeros ("06:foobar" is the string "foobar").
//
// Integers are strict: no sign other than a leading '-', no leading zeros, no "-0", and the
// value must fit in an int64.
package bencode

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	jbencode "github.com/jackpal/bencode-go"
)

// MaxDepth is the deepest nesting of lists and dictionaries Check accepts.
const MaxDepth = 64

// MaxSize is the largest input Check accepts (offsets are kept in 32 bits when sorting keys).
const MaxSize = math.MaxInt32

// SyntaxError describes invalid bencoded data and where it was found.
type SyntaxError struct {
	// Offset is the byte offset in the input at which the problem was detected.
	Offset int
	// Msg says what is wrong.
	Msg string
	// Err is ErrTruncated when the input ends inside a value, else nil.
	Err error
}

// Unwrap returns Err, so that errors.Is(err, ErrTruncated) works.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid bencoding: %s at offset %d", e.Msg, e.Offset)
}

// ErrTruncated is wrapped by the SyntaxError returned for input that ends inside a value.
var ErrTruncated = errors.New("unexpected end of input")

func syntaxErr(off int, format string, args ...any) error {
	e := &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
	if len(args) > 0 && args[0] == ErrTruncated {
		e.Err = ErrTruncated
	}
	return e
}

// frame is one open list or dictionary on the scanner's stack.
type frame struct {
	dict     bool
	start    int // offset of the 'd' or 'l'
	wantKey  bool
	prevKey  [2]int // span of the previous key in a dict; prevKey[0] < 0 when none
	unsorted bool   // a key came out of order: check for duplicates when the dict ends
}

// Check reports whether data holds exactly one well-formed bencoded value and nothing else.
// It allocates nothing for well-formed input with sorted keys, and at most 4 bytes per key
// of a dictionary whose keys are unsorted.
func Check(data []byte) error {
	end, err := scan(data, 0)
	if err != nil {
		return err
	}
	if end != len(data) {
		return syntaxErr(end, "trailing data after the top-level value (%d bytes)", len(data)-end)
	}
	return nil
}

// Span returns the end offset of the one value that starts at data[start], checking its
// syntax. The bytes after it are not looked at.
func Span(data []byte, start int) (end int, err error) {
	return scan(data, start)
}

// scan validates the value starting at pos and returns the offset just past it.
func scan(data []byte, pos int) (int, error) {
	if len(data) > MaxSize {
		return 0, syntaxErr(0, "input of %d bytes is larger than %d", len(data), MaxSize)
	}
	if pos < 0 || pos > len(data) {
		return 0, syntaxErr(pos, "start offset out of range")
	}
	var stack [MaxDepth]frame
	depth := 0
	var scratch []int32 // key offsets, reused for every unsorted dictionary
	for {
		// Inside a container: handle its end, or a dictionary key.
		if depth > 0 {
			top := &stack[depth-1]
			if pos >= len(data) {
				return 0, syntaxErr(pos, "%v: unterminated %s", ErrTruncated, kind(top.dict))
			}
			if data[pos] == 'e' {
				if top.dict && !top.wantKey {
					return 0, syntaxErr(pos, "dictionary key without a value")
				}
				if top.dict && top.unsorted {
					var err error
					if scratch, err = checkDuplicateKeys(data, top.start, scratch); err != nil {
						return 0, err
					}
				}
				pos++
				depth--
				if depth == 0 {
					return pos, nil
				}
				stack[depth-1].wantKey = true // no-op for lists
				continue
			}
			if top.dict && top.wantKey {
				ks, ke, err := scanString(data, pos)
				if err != nil {
					if pos < len(data) && !isDigit(data[pos]) {
						return 0, syntaxErr(pos, "dictionary key is not a string (found %q)", data[pos])
					}
					return 0, err
				}
				if top.prevKey[0] >= 0 && !top.unsorted {
					switch c := bytes.Compare(data[top.prevKey[0]:top.prevKey[1]], data[ks:ke]); {
					case c == 0:
						return 0, syntaxErr(pos, "duplicate dictionary key %q", data[ks:ke])
					case c > 0:
						top.unsorted = true
					}
				}
				top.prevKey = [2]int{ks, ke}
				top.wantKey = false
				pos = ke
				if pos >= len(data) {
					return 0, syntaxErr(pos, "%v: dictionary key without a value", ErrTruncated)
				}
				if data[pos] == 'e' {
					return 0, syntaxErr(pos, "dictionary key without a value")
				}
			}
		}
		if pos >= len(data) {
			return 0, syntaxErr(pos, "%v: expected a value", ErrTruncated)
		}
		switch c := data[pos]; {
		case c == 'i':
			end, err := scanInt(data, pos)
			if err != nil {
				return 0, err
			}
			pos = end
		case isDigit(c):
			_, end, err := scanString(data, pos)
			if err != nil {
				return 0, err
			}
			pos = end
		case c == 'l' || c == 'd':
			if depth == MaxDepth {
				return 0, syntaxErr(pos, "nesting deeper than %d", MaxDepth)
			}
			stack[depth] = frame{dict: c == 'd', start: pos, wantKey: true, prevKey: [2]int{-1, -1}}
			depth++
			pos++
			continue
		default:
			return 0, syntaxErr(pos, "unexpected byte %q where a value should start", c)
		}
		if depth == 0 {
			return pos, nil
		}
		stack[depth-1].wantKey = true // no-op for lists
	}
}

func kind(dict bool) string {
	if dict {
		return "dictionary"
	}
	return "list"
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanInt validates "i<int>e" at pos and returns the offset past the 'e'.
func scanInt(data []byte, pos int) (int, error) {
	start := pos
	pos++ // 'i'
	neg := false
	if pos < len(data) && data[pos] == '-' {
		neg = true
		pos++
	}
	digits := pos
	var v uint64
	for pos < len(data) && isDigit(data[pos]) {
		d := uint64(data[pos] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, syntaxErr(start, "integer overflows int64")
		}
		v = v*10 + d
		pos++
	}
	if pos >= len(data) {
		return 0, syntaxErr(pos, "%v: unterminated integer", ErrTruncated)
	}
	if data[pos] != 'e' {
		return 0, syntaxErr(pos, "unexpected byte %q in integer", data[pos])
	}
	n := pos - digits
	switch {
	case n == 0:
		return 0, syntaxErr(start, "integer without digits")
	case data[digits] == '0' && n > 1:
		return 0, syntaxErr(start, "integer with a leading zero")
	case neg && v == 0:
		return 0, syntaxErr(start, "negative zero")
	case !neg && v > math.MaxInt64, neg && v > math.MaxInt64+1:
		return 0, syntaxErr(start, "integer overflows int64")
	}
	return pos + 1, nil
}

// scanString validates "<len>:<bytes>" at pos and returns the span of the bytes.
func scanString(data []byte, pos int) (start, end int, err error) {
	begin := pos
	var n uint64
	for pos < len(data) && isDigit(data[pos]) {
		n = n*10 + uint64(data[pos]-'0')
		if n > uint64(len(data)) {
			return 0, 0, syntaxErr(begin, "%v: string length runs past the end of input", ErrTruncated)
		}
		pos++
	}
	if pos == begin {
		if pos >= len(data) {
			return 0, 0, syntaxErr(pos, "%v: expected a string", ErrTruncated)
		}
		return 0, 0, syntaxErr(pos, "unexpected byte %q where a string length should start", data[pos])
	}
	if pos >= len(data) {
		return 0, 0, syntaxErr(pos, "%v: unterminated string length", ErrTruncated)
	}
	if data[pos] != ':' {
		return 0, 0, syntaxErr(pos, "unexpected byte %q in string length", data[pos])
	}
	pos++
	if n > uint64(len(data)-pos) {
		return 0, 0, syntaxErr(begin, "%v: string of %d bytes runs past the end of input", ErrTruncated, n)
	}
	return pos, pos + int(n), nil
}

// checkDuplicateKeys looks for a key that appears twice in the (syntactically valid) dictionary
// starting at data[start]. scratch is reused between calls.
func checkDuplicateKeys(data []byte, start int, scratch []int32) ([]int32, error) {
	keys := scratch[:0]
	pos := start + 1
	for data[pos] != 'e' {
		keys = append(keys, int32(pos))
		_, ke, _ := scanString(data, pos)
		pos = skipValidated(data, ke)
	}
	key := func(off int32) []byte {
		s, e, _ := scanString(data, int(off))
		return data[s:e]
	}
	slices.SortFunc(keys, func(a, b int32) int { return bytes.Compare(key(a), key(b)) })
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(key(keys[i-1]), key(keys[i])) {
			return keys, syntaxErr(int(keys[i]), "duplicate dictionary key %q", key(keys[i]))
		}
	}
	return keys, nil
}

// skipValidated returns the offset past the value at pos, which is known to be well formed.
func skipValidated(data []byte, pos int) int {
	depth := 0
	for {
		switch c := data[pos]; {
		case c == 'i':
			pos = bytes.IndexByte(data[pos:], 'e') + pos + 1
		case c == 'l' || c == 'd':
			depth++
			pos++
			continue
		case c == 'e':
			depth--
			pos++
		default:
			_, pos, _ = scanString(data, pos)
		}
		if depth == 0 {
			return pos
		}
	}
}

// Decode checks data with Check and then unmarshals it into v with bencode-go's Unmarshal
// (struct fields match keys by their `bencode:"key"` tag or, case-insensitively, by name;
// keys without a field are ignored). A value whose type does not fit its field is an error or,
// for a string given where a number is expected, left unset. Decode never panics.
func Decode(data []byte, v any) (err error) {
	if err := Check(data); err != nil {
		return fmt.Errorf("bencode decode: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bencode decode: value does not fit %T: %v", v, r)
		}
	}()
	if err := jbencode.Unmarshal(bytes.NewReader(data), v); err != nil {
		return fmt.Errorf("bencode decode into %T: %w", v, err)
	}
	return nil
}

// DecodeValue checks data with Check and returns the generic value it holds: int64, string,
// []any or map[string]any, nested. It never panics.
func DecodeValue(data []byte) (v any, err error) {
	if err := Check(data); err != nil {
		return nil, fmt.Errorf("bencode decode: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("bencode decode: %v", r)
		}
	}()
	v, err = jbencode.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("bencode decode: %w", err)
	}
	return v, nil
}

// DictValue checks data with Check and returns the exact bytes of the value stored under key
// in the top-level dictionary, and whether the key is present. The returned slice aliases
// data. It is an error when data is not a dictionary.
func DictValue(data []byte, key string) ([]byte, bool, error) {
	if err := Check(data); err != nil {
		return nil, false, fmt.Errorf("bencode dict value %q: %w", key, err)
	}
	if data[0] != 'd' {
		return nil, false, fmt.Errorf("bencode dict value %q: top-level value is not a dictionary", key)
	}
	pos := 1
	for data[pos] != 'e' {
		ks, ke, _ := scanString(data, pos)
		end := skipValidated(data, ke)
		if string(data[ks:ke]) == key {
			return data[ke:end:end], true, nil
		}
		pos = end
	}
	return nil, false, nil
}

// Marshal encodes v with bencode-go: strings and []byte as strings, integers as integers,
// slices and arrays as lists, maps with string keys and structs as dictionaries with sorted
// keys (struct fields are named by their `bencode:"key,omitempty"` tag). Booleans, floats,
// pointers and nil are errors. Marshal never panics.
func Marshal(v any) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("bencode marshal %T: %v", v, r)
		}
	}()
	var buf bytes.Buffer
	if err := jbencode.Marshal(&buf, v); err != nil {
		return nil, fmt.Errorf("bencode marshal %T: %w", v, err)
	}
	if err := Check(buf.Bytes()); err != nil { // e.g. two struct fields with the same key
		return nil, fmt.Errorf("bencode marshal %T: produced invalid output: %w", v, err)
	}
	return buf.Bytes(), nil
}
