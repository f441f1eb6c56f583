package torrentfile

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// Broken and hostile torrent files: every one gives an error or a safe layout, never a panic.

const hostileCorpus = "testdata/libtorrent/test_torrents/"

// parseNoPanic parses b and turns a panic into a test failure.
func parseNoPanic(t *testing.T, what string, b []byte) (mi *Metainfo, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: Parse panicked: %v", what, r)
		}
	}()
	return ParseBytes(b)
}

// checkSafeLayout fails unless every file path stays inside the torrent's folder.
func checkSafeLayout(t *testing.T, what string, info *Info) {
	t.Helper()
	seen := map[string]bool{}
	for i, f := range info.Files {
		if len(f.Path) == 0 {
			t.Errorf("%s: file %d has an empty path", what, i)
			continue
		}
		for _, e := range f.Path {
			if e == "" || e == "." || e == ".." || strings.ContainsAny(e, "/\\\x00") {
				t.Errorf("%s: file %d has unsafe element %q in %q", what, i, e, f.Path)
			}
		}
		rel := filepath.Join(f.Path...)
		if !filepath.IsLocal(rel) {
			t.Errorf("%s: file %d path %q is not local", what, i, rel)
		}
		if !f.Padding {
			k := strings.ToLower(rel)
			if seen[k] {
				t.Errorf("%s: two files at %q", what, rel)
			}
			seen[k] = true
		}
	}
}

func TestHostileTruncatedTorrents(t *testing.T) {
	for _, name := range []string{"base.torrent", "url_seed_multi.torrent", "sample.torrent"} {
		b, err := os.ReadFile(hostileCorpus + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseNoPanic(t, name, b); err != nil {
			t.Fatalf("%s: the whole file does not parse: %v", name, err)
		}
		for n := range len(b) {
			mi, err := parseNoPanic(t, fmt.Sprintf("%s[:%d]", name, n), b[:n])
			if err == nil {
				t.Errorf("%s cut to %d of %d bytes parsed (%q)", name, n, len(b), mi.Info.Name)
			}
		}
	}
}

// hostileTorrent bencodes a top-level dictionary.
func hostileEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeDict(t *testing.T, b []byte) map[string]any {
	t.Helper()
	v, err := bencode.DecodeValue(b)
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

// TestHostileWrongTypes replaces each value of the top level, the info dictionary and each
// file entry with an int, a string, a list and a dict.
func TestHostileWrongTypes(t *testing.T) {
	subs := []any{int64(7), "zz", []any{int64(1), "x"}, map[string]any{"k": "v"}, int64(-1), ""}
	for _, name := range []string{"base.torrent", "url_seed_multi.torrent", "sample.torrent"} {
		b, err := os.ReadFile(hostileCorpus + name)
		if err != nil {
			t.Fatal(err)
		}
		cases, errs := 0, 0
		try := func(what string, mutate func(top map[string]any)) {
			top := decodeDict(t, b) // a fresh copy each time
			mutate(top)
			mi, err := parseNoPanic(t, what, hostileEncode(t, top))
			cases++
			if err != nil {
				errs++
				return
			}
			checkSafeLayout(t, what, &mi.Info)
		}
		top := decodeDict(t, b)
		for k := range top {
			for si, sub := range subs {
				try(fmt.Sprintf("%s top[%q]=%d", name, k, si), func(top map[string]any) { top[k] = sub })
			}
		}
		info := top["info"].(map[string]any)
		for k := range info {
			for si, sub := range subs {
				try(fmt.Sprintf("%s info[%q]=%d", name, k, si), func(top map[string]any) { top["info"].(map[string]any)[k] = sub })
			}
		}
		if files, ok := info["files"].([]any); ok {
			for fi := range files {
				for si, sub := range subs {
					try(fmt.Sprintf("%s files[%d]=%d", name, fi, si), func(top map[string]any) {
						top["info"].(map[string]any)["files"].([]any)[fi] = sub
					})
				}
				for k := range files[fi].(map[string]any) {
					for si, sub := range subs {
						try(fmt.Sprintf("%s files[%d][%q]=%d", name, fi, k, si), func(top map[string]any) {
							top["info"].(map[string]any)["files"].([]any)[fi].(map[string]any)[k] = sub
						})
					}
				}
				if p, ok := files[fi].(map[string]any)["path"].([]any); ok {
					for pi := range p {
						for si, sub := range subs {
							try(fmt.Sprintf("%s files[%d].path[%d]=%d", name, fi, pi, si), func(top map[string]any) {
								top["info"].(map[string]any)["files"].([]any)[fi].(map[string]any)["path"].([]any)[pi] = sub
							})
						}
					}
				}
			}
		}
		t.Logf("%s: %d substitutions, %d refused, the rest parsed with a safe layout", name, cases, errs)
	}
}

// multiTorrent bencodes a multi-file torrent with the given name and file paths (1000 bytes
// each, 16 KiB pieces, made-up hashes).
func multiTorrent(name string, paths [][]string, pieceLen int64) map[string]any {
	var files []any
	for _, p := range paths {
		el := make([]any, len(p))
		for i, e := range p {
			el[i] = e
		}
		files = append(files, map[string]any{"length": int64(1000), "path": el})
	}
	total := int64(1000 * len(paths))
	n := (total + pieceLen - 1) / pieceLen
	return map[string]any{"info": map[string]any{
		"name": name, "piece length": pieceLen, "files": files,
		"pieces": strings.Repeat("h", int(n)*HashSize),
	}}
}

// hostileLayouts are multi-file torrents whose names try to leave the folder (cache's
// hostile test opens storage for similar ones).
var hostileLayouts = map[string]struct {
	Name  string
	Paths [][]string
}{
	"traversal": {"t", [][]string{
		{"..", "..", "etc", "passwd"}, {"/abs"}, {"/", "abs2"}, {"a", "..", "..", "b"}, {"x\x00y"},
		{`C:\x`}, {`..\..\win`}, {"."}, {""}, {"ok", "..."}, {"sub", "../up"}, {"a/../../c"},
	}},
	"traversal name": {"../../evil", [][]string{{"f"}}},
	"absolute name":  {"/etc", [][]string{{"passwd"}}},
	"dot name":       {"..", [][]string{{"f"}, {"..", "g"}}},
	"duplicates": {"d", [][]string{
		{"same"}, {"same"}, {"SAME"}, {"dir", "f"}, {"dir"}, {"dir", "f"}, {"same.1"}, {"x.txt"}, {"x.txt"},
	}},
}

func TestHostileNames(t *testing.T) {
	keys := make([]string, 0, len(hostileLayouts))
	for k := range hostileLayouts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l := hostileLayouts[k]
		mi, err := parseNoPanic(t, k, hostileEncode(t, multiTorrent(l.Name, l.Paths, 16<<10)))
		if err != nil {
			t.Logf("%s: refused: %v", k, err)
			continue
		}
		checkSafeLayout(t, k, &mi.Info)
		var got []string
		for _, f := range mi.Info.Files {
			got = append(got, strings.Join(f.Path, "/"))
		}
		t.Logf("%s: %q", k, got)
	}
	// Single-file torrents with hostile names.
	for _, name := range []string{"../../etc/passwd", "/abs", "a/../../b", "x\x00y", `C:\x`, "..", "."} {
		top := map[string]any{"info": map[string]any{
			"name": name, "piece length": int64(16384), "length": int64(10), "pieces": strings.Repeat("h", 20),
		}}
		mi, err := parseNoPanic(t, name, hostileEncode(t, top))
		if err != nil {
			t.Logf("single file %q: refused: %v", name, err)
			continue
		}
		checkSafeLayout(t, name, &mi.Info)
		t.Logf("single file %q: %q", name, mi.Info.Files[0].Path)
	}
}

func TestHostileSizes(t *testing.T) {
	one := [][]string{{"f"}}
	big := multiTorrent("n", one, 1<<40)
	if _, err := parseNoPanic(t, "2^40", hostileEncode(t, big)); err == nil {
		t.Error("piece length 2^40 accepted")
	}
	for _, n := range []int{0, 19, 21, 40, 1 << 20} {
		top := multiTorrent("n", one, 16<<10)
		top["info"].(map[string]any)["pieces"] = strings.Repeat("h", n)
		if _, err := parseNoPanic(t, fmt.Sprintf("%d hash bytes", n), hostileEncode(t, top)); err == nil {
			t.Errorf("%d bytes of piece hashes for one piece accepted", n)
		}
	}
	// A file so long its pieces overflow, a negative length, a huge total.
	for _, length := range []int64{-1, 1 << 62, 1<<63 - 1} {
		top := multiTorrent("n", one, 16<<10)
		top["info"].(map[string]any)["files"].([]any)[0].(map[string]any)["length"] = length
		if _, err := parseNoPanic(t, fmt.Sprintf("length %d", length), hostileEncode(t, top)); err == nil {
			t.Errorf("file length %d accepted", length)
		}
	}
	// Two files whose lengths add up past int64.
	top := multiTorrent("n", [][]string{{"a"}, {"b"}}, 16<<10)
	for _, f := range top["info"].(map[string]any)["files"].([]any) {
		f.(map[string]any)["length"] = int64(maxFileLength)
	}
	if _, err := parseNoPanic(t, "overflow", hostileEncode(t, top)); err == nil {
		t.Error("total length past the piece limit accepted")
	}
}

// TestHostileMillionFiles: a million one-byte files parse (or are refused) quickly and in
// bounded memory.
func TestHostileMillionFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: reason: -short (building and parsing a million-file torrent takes seconds)")
	}
	const n = 1_000_000
	const pl = 16 << 10
	var b bytes.Buffer
	b.WriteString("d4:infod5:filesl")
	for i := range n {
		fmt.Fprintf(&b, "d6:lengthi1e4:pathl7:f%06dee", i)
	}
	pieces := (n + pl - 1) / pl
	fmt.Fprintf(&b, "e4:name4:many12:piece lengthi%de6:pieces%d:", pl, pieces*HashSize)
	for range pieces {
		h := sha1.Sum(nil)
		b.Write(h[:])
	}
	b.WriteString("ee")
	data := b.Bytes()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	mi, err := parseNoPanic(t, "million files", data)
	took := time.Since(start)
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	runtime.GC()
	var m2 runtime.MemStats
	runtime.ReadMemStats(&m2)
	kept := int64(m2.HeapInuse) - int64(m0.HeapInuse)
	if err != nil {
		t.Logf("%d files (%.1f MiB torrent): refused in %v: %v", n, float64(len(data))/(1<<20), took, err)
	} else {
		if len(mi.Info.Files) != n {
			t.Errorf("%d files parsed, want %d", len(mi.Info.Files), n)
		}
		checkSafeLayout(t, "million", &mi.Info)
		t.Logf("%d files (%.1f MiB torrent): parsed in %v, %.0f MiB allocated, %.0f MiB kept for the result",
			n, float64(len(data))/(1<<20), took.Round(time.Millisecond), float64(alloc)/(1<<20), float64(kept)/(1<<20))
	}
	runtime.KeepAlive(mi)
	if took > 30*time.Second {
		t.Errorf("took %v", took)
	}
	if alloc > 4<<30 {
		t.Errorf("allocated %d bytes", alloc)
	}
}
