package httpserve

import (
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

// statusPage is the live status page: plain HTML, CSS and a little JavaScript that polls
// /api/status.
//
//go:embed status.html
var statusPage []byte

// maxAddBody bounds the body of POST /api/torrents (a magnet link or a path).
const maxAddBody = 64 << 10

func (s *Server) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	if r.Method != http.MethodHead {
		w.Write(statusPage)
	}
}

// serveStatus answers /api/status with the JSON `gotfs status --json` prints.
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// addRequest is the body of POST /api/torrents.
type addRequest struct {
	Source string `json:"source"`
}

// addTorrent answers POST /api/torrents {"source": "magnet:?..."} with 201 {"name": ...}. The
// body must be JSON: a page of another site cannot send that without the browser asking
// first (CORS), so a browser that remembers the password cannot be made to add torrents.
func (s *Server) addTorrent(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "gotfs: add a torrent: the body must be JSON (Content-Type: application/json)", http.StatusUnsupportedMediaType)
		return
	}
	var req addRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAddBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.Source) == "" {
		if err == nil {
			err = errors.New(`"source" is empty`)
		}
		http.Error(w, "gotfs: add a torrent: want {\"source\": \"magnet:?... or a .torrent path\"}: "+err.Error(), http.StatusBadRequest)
		return
	}
	name, err := s.opts.Control.Add(r.Context(), req.Source)
	if err != nil {
		http.Error(w, "gotfs: add "+req.Source+": "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": name})
}

// removeTorrent answers DELETE /api/torrents/{name or info hash} with 204.
func (s *Server) removeTorrent(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.opts.Control.Remove(r.Context(), name); err != nil {
		http.Error(w, "gotfs: remove "+name+": "+err.Error(), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
