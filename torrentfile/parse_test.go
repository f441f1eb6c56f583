package torrentfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// torrent builds a .torrent with the given top-level entries (already bencoded, in order) and
// info entries.
func torrent(top, info string) []byte {
	return []byte("d" + top + "4:infod" + info + "ee")
}

const (
	p1       = "6:pieces20:aaaaaaaaaaaaaaaaaaaa"
	okSingle = "6:lengthi10e4:name1:a12:piece lengthi16384e" + p1
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"not bencode", "hello", "invalid bencoding"},
		{"trailing garbage", string(torrent("", okSingle)) + "x", "trailing"},
		{"list", "le", "not a bencoded dictionary"},
		{"no info", "d3:fooi1ee", "missing info"},
		{"info string", "d4:info3:abce", "info is not a dictionary"},
		{"no piece length", string(torrent("", "6:lengthi10e4:name1:a"+p1)), "missing piece length"},
		{"zero piece length", string(torrent("", "6:lengthi10e4:name1:a12:piece lengthi0e"+p1)), "invalid piece length"},
		{"negative piece length", string(torrent("", "6:lengthi10e4:name1:a12:piece lengthi-16384e"+p1)), "invalid piece length"},
		{"huge piece length", string(torrent("", "6:lengthi10e4:name1:a12:piece lengthi1073741824e"+p1)), "invalid piece length"},
		{"no name", string(torrent("", "6:lengthi10e12:piece lengthi16384e"+p1)), "missing name"},
		{"name dots", string(torrent("", "6:lengthi10e4:name2:..12:piece lengthi16384e"+p1)), "missing name"},
		{"no length", string(torrent("", "4:name1:a12:piece lengthi16384e"+p1)), "missing length"},
		{"negative length", string(torrent("", "6:lengthi-1e4:name1:a12:piece lengthi16384e"+p1)), "negative"},
		{"zero length", string(torrent("", "6:lengthi0e4:name1:a12:piece lengthi16384e6:pieces0:")), "zero"},
		{"no pieces", string(torrent("", "6:lengthi10e4:name1:a12:piece lengthi16384e")), "missing pieces"},
		{"pieces not multiple", string(torrent("", "6:lengthi10e4:name1:a12:piece lengthi16384e6:pieces19:aaaaaaaaaaaaaaaaaaa")), "not a multiple of 20"},
		{"pieces count", string(torrent("", "6:lengthi20000e4:name1:a12:piece lengthi16384e"+p1)), "1 piece hashes for 2 pieces"},
		{"too many pieces", string(torrent("", "6:lengthi1099511627776e4:name1:a12:piece lengthi16384e"+p1)), "too many pieces"},
		{"file length overflow", string(torrent("", "5:filesld6:lengthi9223372036854775807e4:pathl1:aeed6:lengthi9223372036854775807e4:pathl1:beee4:name1:a12:piece lengthi16384e"+p1)), "too large"},
		{"total overflow", string(torrent("", "5:filesld6:lengthi17592186028031e4:pathl1:aeed6:lengthi17592186028031e4:pathl1:beed6:lengthi17592186028031e4:pathl1:ceee4:name1:a12:piece lengthi16384e"+p1)), "pieces"},
		{"no files", string(torrent("", "5:filesle4:name1:a12:piece lengthi16384e"+p1)), "no files"},
		{"file not dict", string(torrent("", "5:filesli1ee4:name1:a12:piece lengthi16384e"+p1)), "not a dictionary"},
		{"path not string", string(torrent("", "5:filesld6:lengthi10e4:pathli1eeee4:name1:a12:piece lengthi16384e"+p1)), "not a string"},
		{"no path", string(torrent("", "5:filesld6:lengthi10eee4:name1:a12:piece lengthi16384e"+p1)), "missing path"},
		{"v2 only", string(torrent("", "9:file treed1:ad0:d6:lengthi10eeee12:meta versioni2e4:name1:a12:piece lengthi16384e")), "v2-only torrents are not supported yet"},
		{"meta version 3", string(torrent("", okSingle+"12:meta versioni3e")), "unknown meta version"},
		{"duplicate key in info", string(torrent("", "6:lengthi10e6:lengthi10e4:name1:a12:piece lengthi16384e"+p1)), "duplicate"},
		{"deep nesting", "d1:x" + strings.Repeat("l", 100) + strings.Repeat("e", 100) + "4:infod" + okSingle + "ee", "nesting"},
	}
	for _, tt := range tests {
		_, err := ParseBytes([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", tt.name, err)
		}
	}
	_, err := ParseBytes(torrent("", "9:file treed1:ad0:d6:lengthi10eeee12:meta versioni2e4:name1:a12:piece lengthi16384e"))
	if !errors.Is(err, ErrV2Only) || err.Error() != "v2-only torrents are not supported yet" {
		t.Errorf("v2-only error = %q", err)
	}
}

func TestParseFields(t *testing.T) {
	data := torrent(
		"8:announce13:http://x/ann 13:announce-listll13:http://a/ann 0:12:http://b/annelel12:http://a/ann12:http://c/annee"+
			"7:comment1:c10:created by2:me13:creation datei1700000000e"+
			"9:httpseeds10:http://hs/"+
			"5:nodesll9:127.0.0.1i6881eel3:::1i1ee13:10.0.0.1:6882l3:badee"+
			"8:url-listl10:http://w1/0:10:http://w1/10:http://w2/e",
		"5:filesld6:lengthi5e4:pathl1:x5:a.txteed4:attr1:p6:lengthi11eed6:lengthi4e4:pathl1:X5:A.TXTeee"+
			"4:name3:dir10:name.utf-85:dir-u12:piece lengthi16384e"+p1+"7:privatei1e6:source3:src")
	mi, err := ParseBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, mi)
	wantTrackers := [][]string{{"http://a/ann", "http://b/ann"}, {"http://c/ann"}}
	if !reflect.DeepEqual(mi.Trackers, wantTrackers) {
		t.Errorf("Trackers = %q, want %q", mi.Trackers, wantTrackers)
	}
	if want := []string{"http://w1/", "http://w2/"}; !reflect.DeepEqual(mi.WebSeeds, want) {
		t.Errorf("WebSeeds = %q, want %q", mi.WebSeeds, want)
	}
	if want := []string{"http://hs/"}; !reflect.DeepEqual(mi.HTTPSeeds, want) {
		t.Errorf("HTTPSeeds = %q, want %q", mi.HTTPSeeds, want)
	}
	if want := []string{"127.0.0.1:6881", "[::1]:1", "10.0.0.1:6882"}; !reflect.DeepEqual(mi.Nodes, want) {
		t.Errorf("Nodes = %q, want %q", mi.Nodes, want)
	}
	if mi.Comment != "c" || mi.CreatedBy != "me" || !mi.CreationDate.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("comment %q created by %q date %v", mi.Comment, mi.CreatedBy, mi.CreationDate)
	}
	in := mi.Info
	if in.Name != "dir-u" || !in.Private || in.Source != "src" || !in.MultiFile || in.Length != 20 {
		t.Errorf("info %+v", in)
	}
	wantPaths := [][]string{{"dir-u", "x", "a.txt"}, {"dir-u", ".pad", "11"}, {"dir-u", "X", "A.1.TXT"}}
	for i, f := range in.Files {
		if !reflect.DeepEqual(f.Path, wantPaths[i]) {
			t.Errorf("file %d path %q, want %q", i, f.Path, wantPaths[i])
		}
	}
	if !in.Files[1].Padding || in.Files[0].Padding || !reflect.DeepEqual(in.VisibleFiles(), []int{0, 2}) {
		t.Errorf("padding wrong: %+v", in.Files)
	}
	// Single announce when there is no announce-list.
	mi, err = ParseBytes(torrent("8:announce12:udp://t:1/an", okSingle))
	if err != nil || !reflect.DeepEqual(mi.Trackers, [][]string{{"udp://t:1/an"}}) {
		t.Errorf("announce only: %v %q", err, mi.Trackers)
	}
}

func TestSanitizeElement(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct{ in, want string }{
		{"", "_"},
		{".", ""},
		{"..", ""},
		{"...", "..."},
		{"a/b", "ab"},
		{"a\\b", "ab"},
		{"/..", ""},
		{"./", ""},
		{".\\.", ""},
		{"a\x00b", "a_b"},
		{"tab\there", "tab_here"},
		{"bad\xffutf8", "bad_utf8"},
		{"rtl\u202eexe.txt", "rtlexe.txt"},
		{"ok ünïcode", "ok ünïcode"},
		{long, strings.Repeat("x", 240)},
		{long + ".mkv", strings.Repeat("x", 240) + ".mkv"},
	}
	for _, tt := range tests {
		if got := sanitizeElement(tt.in); got != tt.want {
			t.Errorf("sanitizeElement(%.20q) = %q (%d bytes), want %.20q (%d bytes)", tt.in, got, len(got), tt.want, len(tt.want))
		}
	}
}

func TestResolveDuplicates(t *testing.T) {
	files := []File{
		{Path: []string{"t", "a"}},
		{Path: []string{"t", "a", "b"}},
		{Path: []string{"t", "f.txt"}},
		{Path: []string{"t", "F.TXT"}},
		{Path: []string{"t", "f.1.txt"}},
		{Path: []string{"t", "p"}, Padding: true},
		{Path: []string{"t", "p"}, Padding: true},
	}
	if err := resolveDuplicates(files); err != nil {
		t.Fatal(err)
	}
	want := []string{"t/a.1", "t/a/b", "t/f.txt", "t/F.1.TXT", "t/f.1.1.txt", "t/p", "t/p"}
	for i, f := range files {
		if got := strings.Join(f.Path, "/"); got != want[i] {
			t.Errorf("file %d: %q, want %q", i, got, want[i])
		}
	}
}

func FuzzParse(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParse (small files from libtorrent's corpus) plus a few here.
	f.Add(torrent("", okSingle))
	f.Add(torrent("8:announce3:x:1", "5:filesld6:lengthi10e4:pathl2:..1:/eed4:attr1:p6:lengthi3eee4:name1:a12:piece lengthi16384e"+p1))
	f.Fuzz(func(t *testing.T, data []byte) {
		mi, err := ParseBytes(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		checkLayout(t, mi)
		if m, err := ParseMagnet(mi.Magnet().String()); err != nil || m.InfoHash != mi.InfoHash {
			t.Fatalf("magnet round trip: %v", err)
		}
	})
}
