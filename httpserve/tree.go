package httpserve

import (
	"fmt"
	"sort"

	"github.com/gotfs/gotfs/torrentfile"
)

// node is a file or a folder of a served torrent, at the same path as in a mount.
type node struct {
	name     string
	file     int // index in Info.Files, -1 for a folder
	size     int64
	children map[string]*node // a folder's entries
	sorted   []*node          // the same entries by name, for listings
}

func (n *node) isDir() bool { return n.file < 0 }

// buildTree lays out a torrent's visible files as a mount shows them: a single-file torrent is
// its file; a multi-file torrent is a folder named entry holding its files' paths below the
// first element. It fails where fusefs.FS.Add fails: a file outside the torrent's folder, a
// path both a file and a folder, a path twice.
func buildTree(entry string, info *torrentfile.Info) (*node, error) {
	visible := info.VisibleFiles()
	if len(visible) == 0 {
		return nil, fmt.Errorf("torrent %s: no files", info.Name)
	}
	first := info.Files[visible[0]].Path
	if len(first) == 1 {
		i := visible[0]
		return &node{name: entry, file: i, size: info.Files[i].Length}, nil
	}
	root := &node{name: entry, file: -1, children: map[string]*node{}}
	for _, i := range visible {
		p := info.Files[i].Path
		if len(p) < 2 || p[0] != first[0] {
			return nil, fmt.Errorf("torrent %s: file %q is outside the torrent's folder", info.Name, p)
		}
		dir := root
		for _, el := range p[1 : len(p)-1] {
			ch := dir.children[el]
			if ch == nil {
				ch = &node{name: el, file: -1, children: map[string]*node{}}
				dir.children[el] = ch
			} else if !ch.isDir() {
				return nil, fmt.Errorf("torrent %s: %q is both a file and a folder", info.Name, p)
			}
			dir = ch
		}
		leaf := p[len(p)-1]
		if dir.children[leaf] != nil {
			return nil, fmt.Errorf("torrent %s: duplicate path %q", info.Name, p)
		}
		dir.children[leaf] = &node{name: leaf, file: i, size: info.Files[i].Length}
	}
	root.sortAll()
	return root, nil
}

// sortAll fills sorted in every folder below n (folders first, then by name).
func (n *node) sortAll() {
	if !n.isDir() {
		return
	}
	n.sorted = make([]*node, 0, len(n.children))
	for _, ch := range n.children {
		n.sorted = append(n.sorted, ch)
		ch.sortAll()
	}
	sort.Slice(n.sorted, func(i, j int) bool {
		a, b := n.sorted[i], n.sorted[j]
		if a.isDir() != b.isDir() {
			return a.isDir()
		}
		return a.name < b.name
	})
}

// lookup follows path elements below n; nil when there is no such entry.
func (n *node) lookup(elems []string) *node {
	for _, el := range elems {
		if !n.isDir() {
			return nil
		}
		n = n.children[el]
		if n == nil {
			return nil
		}
	}
	return n
}

// fileAt is a file and its path elements below the node a walk started from.
type fileAt struct {
	path []string
	n    *node
}

// files lists every file below n in torrent order.
func (n *node) files() []fileAt {
	var out []fileAt
	var rec func(prefix []string, d *node)
	rec = func(prefix []string, d *node) {
		if !d.isDir() {
			out = append(out, fileAt{prefix, d})
			return
		}
		for _, ch := range d.sorted {
			rec(append(prefix[:len(prefix):len(prefix)], ch.name), ch)
		}
	}
	rec(nil, n)
	sort.Slice(out, func(i, j int) bool { return out[i].n.file < out[j].n.file })
	return out
}
