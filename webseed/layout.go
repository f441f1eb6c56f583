package webseed

import (
	"net/url"
	"strings"

	"github.com/gotfs/gotfs/torrentfile"
)

// Layout is what every source of one torrent shares: the file layout, the info hash and each
// file's URL path, escaped once.
type Layout struct {
	info     *torrentfile.Info
	infoHash torrentfile.Hash
	// paths[i] is file i's path under a BEP 19 base URL: the torrent's name and the file's
	// path, each element percent-escaped ("name/dir/a%20b.txt").
	paths []string
}

// NewLayout returns the layout of the torrent with info and infoHash. info must not change
// afterwards.
func NewLayout(info *torrentfile.Info, infoHash torrentfile.Hash) *Layout {
	l := &Layout{info: info, infoHash: infoHash, paths: make([]string, len(info.Files))}
	var b strings.Builder
	for i, f := range info.Files {
		if f.Padding {
			continue // never requested
		}
		b.Reset()
		for j, e := range f.Path {
			if j > 0 {
				b.WriteByte('/')
			}
			b.WriteString(url.PathEscape(e))
		}
		l.paths[i] = b.String()
	}
	return l
}

// span is the part of one file that a range of the torrent covers.
type span struct {
	file    int   // index in Info.Files
	fileOff int64 // where the span starts in the file
	bufOff  int64 // where it goes in the caller's buffer
	n       int64
}

// spans returns the file spans of the torrent bytes [off, off+n), in order, zero-length
// files left out. The range must lie inside the torrent.
func (l *Layout) spans(off, n int64, out []span) []span {
	files := l.info.Files
	end := off + n
	for i := l.info.FileAt(off); i >= 0 && i < len(files) && off < end; i++ {
		f := files[i]
		if f.Length == 0 {
			continue
		}
		take := min(end, f.Offset+f.Length) - off
		out = append(out, span{file: i, fileOff: off - f.Offset, bufOff: n - (end - off), n: take})
		off += take
	}
	return out
}

// fileURL returns the URL of file i under a BEP 19 base URL: a single-file torrent's URL is
// used as is unless it ends in "/", which gets the torrent's name; a multi-file torrent's URL
// always gets "/name/path...".
func (l *Layout) fileURL(base string, i int) string {
	if !l.info.MultiFile && !strings.HasSuffix(base, "/") {
		return base
	}
	if !strings.HasSuffix(base, "/") {
		return base + "/" + l.paths[i]
	}
	return base + l.paths[i]
}
