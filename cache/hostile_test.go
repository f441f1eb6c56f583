package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
)

// hostileTorrentBytes bencodes a multi-file torrent named name with 1000-byte files at the
// given paths (made-up piece hashes: storage does not check them).
func hostileTorrentBytes(name string, paths [][]string) []byte {
	var b strings.Builder
	b.WriteString("d4:infod5:filesl")
	for _, p := range paths {
		b.WriteString("d6:lengthi1000e4:pathl")
		for _, e := range p {
			fmt.Fprintf(&b, "%d:%s", len(e), e)
		}
		b.WriteString("ee")
	}
	const pl = 16 << 10
	n := (1000*len(paths) + pl - 1) / pl
	fmt.Fprintf(&b, "e4:name%d:%s12:piece lengthi%de6:pieces%d:%see", len(name), name, pl, n*20, strings.Repeat("h", n*20))
	return []byte(b.String())
}

// checkInside walks parent and fails on anything that is not dataDir or below it.
func checkInside(t *testing.T, parent, dataDir string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(parent, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == parent {
			return nil
		}
		if fi.IsDir() && strings.HasPrefix(dataDir, p+string(filepath.Separator)) {
			return nil // a folder on the way to the data folder
		}
		rel, _ := filepath.Rel(dataDir, p)
		if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			t.Errorf("%s was created outside the data folder %s", p, dataDir)
		}
		if !fi.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHostileLayoutStaysInside: storage for torrents whose names try to leave the folder
// (after torrentfile's sanitizing) creates nothing outside DataDir.
func TestHostileLayoutStaysInside(t *testing.T) {
	layouts := []struct {
		name  string
		paths [][]string
	}{
		{"t", [][]string{
			{"..", "..", "etc", "passwd"}, {"/abs"}, {"/", "abs2"}, {"a", "..", "..", "b"}, {"x\x00y"},
			{`C:\x`}, {`..\..\win`}, {"."}, {""}, {"sub", "../up"}, {"a/../../c"}, {"..."},
		}},
		{"../../evil", [][]string{{"f"}, {"..", "g"}}},
		{"/etc", [][]string{{"passwd"}}},
		{"..", [][]string{{"f"}}},
		{"d", [][]string{{"same"}, {"same"}, {"SAME"}, {"dir", "f"}, {"dir"}, {"dir", "f"}}},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			mi, err := torrentfile.ParseBytes(hostileTorrentBytes(l.name, l.paths))
			if err != nil {
				t.Logf("refused by torrentfile: %v", err)
				return
			}
			parent := filepath.Join(t.TempDir(), "a", "b", "c")
			dataDir := filepath.Join(parent, "data")
			st, err := Open(&mi.Info, Options{DataDir: dataDir, RecordPath: filepath.Join(t.TempDir(), "rec")})
			if err != nil {
				t.Fatalf("open storage: %v", err)
			}
			for i := range mi.Info.NumPieces() {
				if err := st.WritePiece(i, make([]byte, mi.Info.PieceSize(i))); err != nil {
					t.Fatalf("write piece %d: %v", i, err)
				}
			}
			if err := st.Sync(); err != nil {
				t.Fatal(err)
			}
			st.Close()
			// Walk from three levels up: ../../ from inside the data folder lands there.
			top := filepath.Dir(filepath.Dir(filepath.Dir(parent)))
			if files := checkInside(t, top, dataDir); files != len(l.paths) {
				t.Errorf("%d files on disk, want %d", files, len(l.paths))
			}
		})
	}
}

// TestHostileUnsanitizedInfo: an Info built by hand (not by torrentfile) with paths that leave
// the folder is refused by Open.
func TestHostileUnsanitizedInfo(t *testing.T) {
	for _, p := range [][]string{{"t", "..", "..", "x"}, {"..", "x"}, {"/abs"}, {"t", "a/../../b"}, {"t", "x\x00"}, {"t", ""}, {"t", "."}} {
		info := &torrentfile.Info{Name: "t", PieceLength: 16 << 10, MultiFile: true, Length: 10,
			Files: []torrentfile.File{{Path: p, Length: 10}}, Pieces: make([]torrentfile.Hash, 1)}
		parent := t.TempDir()
		dataDir := filepath.Join(parent, "data")
		st, err := Open(info, Options{DataDir: dataDir, RecordPath: filepath.Join(t.TempDir(), "rec")})
		if err == nil {
			werr := st.WritePiece(0, make([]byte, 10))
			st.Close()
			t.Errorf("path %q: storage opened (write: %v)", p, werr)
		}
		checkInside(t, parent, dataDir)
	}
}

// TestHostileSymlinkInDataDir: a symlink planted inside the data folder does not lead writes
// outside it.
func TestHostileSymlinkInDataDir(t *testing.T) {
	mi, err := torrentfile.ParseBytes(hostileTorrentBytes("t", [][]string{{"sub", "x"}, {"y"}}))
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(filepath.Join(dataDir, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dataDir, "t", "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "y"), filepath.Join(dataDir, "t", "y")); err != nil {
		t.Fatal(err)
	}
	st, err := Open(&mi.Info, Options{DataDir: dataDir, RecordPath: filepath.Join(t.TempDir(), "rec")})
	if err == nil {
		werr := st.WritePiece(0, make([]byte, mi.Info.PieceSize(0)))
		st.Close()
		t.Logf("open succeeded; write: %v", werr)
	} else {
		t.Logf("open refused: %v", err)
	}
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("files created through a symlink outside the data folder: %v", ents)
	}
}
