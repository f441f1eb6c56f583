package httpserve

import (
	"net/http"
	"net/url"
	"strings"
)

// playlistName is the M3U playlist of every torrent's media files; ?torrent=NAME limits it to
// one torrent.
const playlistName = "playlist.m3u"

// servePlaylist answers /playlist.m3u: the media files (video and audio, by extension) of every
// torrent, or of the one named by ?torrent=, in torrent order, as absolute URLs built from
// the request's Host (with its credentials, when the server has a password, so that a player
// given the playlist can fetch them).
func (s *Server) servePlaylist(w http.ResponseWriter, r *http.Request) {
	entries := s.entries()
	if want := r.URL.Query().Get("torrent"); want != "" {
		var one []*served
		for _, e := range entries {
			if e.name == want {
				one = append(one, e)
			}
		}
		if len(one) == 0 {
			http.Error(w, "gotfs: no torrent named "+want, http.StatusNotFound)
			return
		}
		entries = one
		w.Header().Set("Content-Disposition", `inline; filename*=UTF-8''`+url.PathEscape(want)+".m3u")
	}
	base := url.URL{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		base.Scheme = "https"
	}
	if user, pass, ok := r.BasicAuth(); ok && s.auth {
		base.User = url.UserPassword(user, pass)
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	for _, e := range entries {
		for _, f := range e.root.files() {
			if !isMedia(f.n.name) {
				continue
			}
			elems := append([]string{e.name}, f.path...)
			b.WriteString("#EXTINF:-1," + strings.Join(elems, "/") + "\n" + base.String() + escapePath(elems) + "\n")
		}
	}
	w.Header().Set("Content-Type", "audio/x-mpegurl; charset=utf-8")
	if r.Method != http.MethodHead {
		w.Write([]byte(b.String()))
	}
}
