package httpserve

import (
	"strings"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
)

// FuzzTree: any layout either fails to build with an error or gives a tree where every
// visible file is found at its path, and any URL path looks up without a panic.
func FuzzTree(f *testing.F) {
	f.Add("Show/movie.mkv\nShow/extras/notes.txt\nShow/odd #1?.mp4", "/Show/extras/notes.txt")
	f.Add("solo.flac", "/solo.flac")
	f.Add("A/x\nA/x/y", "/A/x/y")
	f.Add("A/x\nB/y", "//A/../x")
	f.Add("A/b\nA/b", "/A/b")
	f.Fuzz(func(t *testing.T, layout, urlPath string) {
		if len(layout) > 4096 {
			return
		}
		info := &torrentfile.Info{Name: "t", PieceLength: 16384}
		var off int64
		for _, line := range strings.Split(layout, "\n") {
			elems := splitPath(line)
			if len(elems) == 0 {
				continue
			}
			info.Files = append(info.Files, torrentfile.File{Path: elems, Length: 1, Offset: off})
			off++
		}
		info.Length = off
		root, err := buildTree("entry", info)
		if err != nil {
			return
		}
		for i, fl := range info.Files {
			n := root.lookup(fl.Path[1:])
			if len(info.Files[0].Path) == 1 {
				n = root // a single-file torrent is its file
				if i > 0 {
					break
				}
			}
			if n == nil || n.file != i {
				t.Fatalf("file %d %q not found in its tree", i, fl.Path)
			}
		}
		if n := root.lookup(splitPath(urlPath)); n != nil && !n.isDir() && (n.file < 0 || n.file >= len(info.Files)) {
			t.Fatalf("lookup %q: file %d", urlPath, n.file)
		}
		for _, fa := range root.files() {
			if root.lookup(fa.path) != fa.n {
				t.Fatalf("files(): %q does not look up to itself", fa.path)
			}
		}
	})
}
