package torrentfile

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir is libtorrent's test corpus (BSD licence, see its LICENSE), with the expected outcome of each file.
const corpusDir = "testdata/libtorrent"

func readExpected(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "EXPECTED.txt"))
	if err != nil {
		t.Fatalf("libtorrent corpus missing (torrentfile/testdata/libtorrent): %v", err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			t.Fatalf("bad EXPECTED.txt line %q", line)
		}
		want[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkLayout verifies the invariants every successfully parsed torrent must hold.
func checkLayout(t *testing.T, mi *Metainfo) {
	t.Helper()
	in := &mi.Info
	if mi.InfoHash != Hash(sha1.Sum(mi.InfoBytes)) {
		t.Errorf("InfoHash is not the SHA-1 of InfoBytes")
	}
	if in.Name == "" || !safeElement(in.Name) {
		t.Errorf("unsafe name %q", in.Name)
	}
	if in.PieceLength <= 0 || in.Length <= 0 || len(in.Files) == 0 {
		t.Fatalf("piece length %d, length %d, %d files", in.PieceLength, in.Length, len(in.Files))
	}
	want := (in.Length + in.PieceLength - 1) / in.PieceLength
	if int64(len(in.Pieces)) != want {
		t.Errorf("%d pieces for length %d, want %d", len(in.Pieces), in.Length, want)
	}
	var off int64
	seen := map[string]bool{}
	for i, f := range in.Files {
		if f.Offset != off || f.Length < 0 {
			t.Errorf("file %d: offset %d length %d, want offset %d", i, f.Offset, f.Length, off)
		}
		off += f.Length
		if len(f.Path) == 0 || f.Path[0] != in.Name {
			t.Errorf("file %d: path %q does not start with the name %q", i, f.Path, in.Name)
		}
		if !in.MultiFile && len(f.Path) != 1 {
			t.Errorf("single-file torrent with path %q", f.Path)
		}
		for _, e := range f.Path {
			if !safeElement(e) {
				t.Errorf("file %d: unsafe path element %q in %q", i, e, f.Path)
			}
		}
		rel := f.RelPath()
		if filepath.IsAbs(rel) || strings.Contains(rel, "..") && !filepath.IsLocal(rel) {
			t.Errorf("file %d: path %q escapes", i, rel)
		}
		if !f.Padding {
			k := strings.ToLower(rel)
			if seen[k] {
				t.Errorf("file %d: duplicate path %q", i, rel)
			}
			seen[k] = true
		}
		if f.Length > 0 {
			if got := in.FileAt(f.Offset); got != i {
				t.Errorf("FileAt(%d) = %d, want %d", f.Offset, got, i)
			}
		}
	}
	if off != in.Length {
		t.Errorf("files add up to %d, Length is %d", off, in.Length)
	}
}

func safeElement(e string) bool {
	return e != "" && e != "." && e != ".." && !strings.ContainsAny(e, "/\\\x00")
}

func TestLibtorrentCorpus(t *testing.T) {
	want := readExpected(t)
	dir := filepath.Join(corpusDir, "test_torrents")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".torrent") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			outcome, ok := want[name]
			if !ok {
				t.Fatalf("%s is not listed in EXPECTED.txt", name)
			}
			mi, err := Load(filepath.Join(dir, name))
			switch {
			case outcome == "ok" && errors.Is(err, ErrV2Only):
				// allowed until BEP 52 lands
			case outcome == "ok" && err != nil:
				t.Errorf("Load: %v, want success", err)
			case outcome == "fail" && err == nil:
				t.Errorf("Load succeeded, want failure (name %q, %d files)", mi.Info.Name, len(mi.Info.Files))
			case err == nil:
				checkLayout(t, mi)
			default:
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
			}
		})
	}
	if n != len(want) {
		t.Errorf("%d torrents in the corpus, %d in EXPECTED.txt", n, len(want))
	}
}

func TestInfoHashUsesRawBytes(t *testing.T) {
	// Unsorted keys and an unknown key inside info: the hash covers the bytes as they are.
	info := "d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa1:zi1e1:bi2ee"
	data := []byte("d8:announce9:http://x/4:info" + info + "e")
	mi, err := ParseBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if mi.InfoHash != Hash(sha1.Sum([]byte(info))) {
		t.Errorf("info hash not over the raw info bytes")
	}
	if string(mi.InfoBytes) != info {
		t.Errorf("InfoBytes = %q", mi.InfoBytes)
	}
	data[len(data)-5] = 'c' // ParseBytes copied the info bytes
	if string(mi.InfoBytes) != info {
		t.Errorf("InfoBytes aliases the input")
	}
}

func TestParseSizeCap(t *testing.T) {
	r := bytes.NewReader(make([]byte, MaxTorrentSize+1))
	if _, err := Parse(r); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse of an oversized file: %v", err)
	}
}
