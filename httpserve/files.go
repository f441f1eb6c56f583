package httpserve

import (
	"context"
	"fmt"
	"html"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/gotfs/gotfs/fetch"
)

// mediaTypes are the content types of the files players fetch, fixed here so that a
// machine's /etc/mime.types (or its absence) changes nothing; other extensions go to
// mime.TypeByExtension, then application/octet-stream.
var mediaTypes = map[string]string{
	".mkv": "video/x-matroska", ".mk3d": "video/x-matroska", ".webm": "video/webm",
	".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".avi": "video/x-msvideo",
	".ts": "video/mp2t", ".m2ts": "video/mp2t", ".mts": "video/mp2t", ".mpg": "video/mpeg",
	".mpeg": "video/mpeg", ".wmv": "video/x-ms-wmv", ".flv": "video/x-flv", ".ogv": "video/ogg",
	".3gp": "video/3gpp",
	".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
	".opus": "audio/ogg", ".m4a": "audio/mp4", ".m4b": "audio/mp4", ".aac": "audio/aac",
	".wav": "audio/wav", ".wma": "audio/x-ms-wma", ".mka": "audio/x-matroska",
	".srt": "application/x-subrip", ".vtt": "text/vtt", ".ass": "text/x-ssa", ".ssa": "text/x-ssa",
	".nfo": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
}

// contentType is the Content-Type of a file named name. It is always set, so ServeContent
// never reads the start of a file to guess one (a HEAD would then fetch pieces).
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := mediaTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// isMedia reports whether a file named name goes into playlists.
func isMedia(name string) bool {
	t := contentType(name)
	return strings.HasPrefix(t, "video/") || strings.HasPrefix(t, "audio/")
}

// serveFiles answers /<entry>/<path>: a file, or a listing of a folder.
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request) {
	elems := splitPath(r.URL.Path)
	if len(elems) == 0 {
		http.NotFound(w, r)
		return
	}
	e, ok := s.enter(elems[0])
	if !ok {
		http.NotFound(w, r)
		return
	}
	defer s.leave(e)
	n := e.root.lookup(elems[1:])
	switch {
	case n == nil:
		http.NotFound(w, r)
	case n.isDir():
		s.serveListing(w, r, e, elems, n)
	default:
		s.serveFile(w, r, e, n)
	}
}

// splitPath splits a URL path into its elements (empty ones dropped).
func splitPath(p string) []string {
	var out []string
	for _, el := range strings.Split(p, "/") {
		if el != "" {
			out = append(out, el)
		}
	}
	return out
}

// escapePath is the URL path of path elements.
func escapePath(elems []string) string {
	var b strings.Builder
	for _, el := range elems {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(el))
	}
	return b.String()
}

// serveFile answers a file with http.ServeContent over a fileReader: ranges, If-Range,
// conditional requests and HEAD are net/http's; the ETag names the torrent and the file.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, e *served, n *node) {
	mi := e.t.Metainfo()
	h := w.Header()
	h.Set("Content-Type", contentType(n.name))
	h.Set("ETag", fmt.Sprintf(`"%s-%d"`, mi.InfoHash.Hex(), n.file))
	// A torrent's HTML or SVG must not run as a page of this origin (it could call the API).
	h.Set("Content-Security-Policy", "sandbox")
	// The body's waits end with the request, the server or the torrent's removal.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	fr := newFileReader(ctx, e.t, n.file, fetch.ReaderOptions{MaxReadahead: s.opts.MaxReadahead, HeadTail: s.opts.HeadTail}, s.opts.ReadTimeout)
	defer fr.Close()
	http.ServeContent(w, r, n.name, mi.CreationDate, fr)
}

// serveListing answers a folder with a simple HTML list of its entries.
func (s *Server) serveListing(w http.ResponseWriter, r *http.Request, e *served, elems []string, n *node) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	title := html.EscapeString(strings.Join(elems, "/"))
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<meta charset=utf-8><meta name=viewport content=\"width=device-width\">\n<title>%s</title>\n", title)
	fmt.Fprintf(&b, "<style>body{font:15px system-ui,sans-serif;margin:1.5em}td{padding:.15em 1em .15em 0}td.n{text-align:right}</style>\n")
	fmt.Fprintf(&b, "<h1>%s</h1>\n<p><a href=\"/\">status</a> · <a href=\"/%s?torrent=%s\">playlist</a></p>\n<table>\n",
		title, playlistName, url.QueryEscape(e.name))
	if len(elems) > 1 {
		fmt.Fprintf(&b, "<tr><td><a href=\"%s/\">..</a></td><td></td></tr>\n", html.EscapeString(escapePath(elems[:len(elems)-1])))
	}
	st := e.t.Storage()
	for _, ch := range n.sorted {
		href := escapePath(append(elems[:len(elems):len(elems)], ch.name))
		if ch.isDir() {
			fmt.Fprintf(&b, "<tr><td><a href=\"%s/\">%s/</a></td><td></td><td></td></tr>\n", html.EscapeString(href), html.EscapeString(ch.name))
			continue
		}
		pct := 100.0
		if ch.size > 0 {
			pct = 100 * float64(st.VerifiedBytesInFile(ch.file)) / float64(ch.size)
		}
		fmt.Fprintf(&b, "<tr><td><a href=\"%s\">%s</a></td><td class=n>%d bytes</td><td class=n>%.1f%% verified</td></tr>\n",
			html.EscapeString(href), html.EscapeString(ch.name), ch.size, pct)
	}
	b.WriteString("</table>\n")
	if r.Method != http.MethodHead {
		fmt.Fprint(w, b.String())
	}
}
