// Package httpserve serves the torrents of a mount (or of `gotfs serve`) over HTTP: every file
// at /<entry name>/<path as in the mount>, with ranges (http.ServeContent over a fetch.Reader
// per request, so HTTP reads drive piece priorities exactly as FUSE reads do), M3U playlists,
// folder listings, and a live status page at / fed by /api/status.
package httpserve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/status"
)

// Names at the root that the server itself answers; a torrent whose entry name is one of them
// is served under its "~hash" name (torrentfile.Metainfo.EntryName).
var reserved = map[string]bool{"api": true, playlistName: true}

// shutdownTimeout bounds how long Close lets requests finish before cutting their connections.
const shutdownTimeout = time.Second

// Control adds torrents to and removes them from a running gotfs; the HTTP API offers it as
// POST /api/torrents and DELETE /api/torrents/{name} when a password is set.
type Control interface {
	// Add starts a torrent from source (a magnet link, or a .torrent file's path on the
	// server) and returns the name it is shown under.
	Add(ctx context.Context, source string) (name string, err error)
	// Remove stops the torrent shown under a name, or with an info hash (hex).
	Remove(ctx context.Context, nameOrHash string) error
}

// Options configures a Server.
type Options struct {
	// User and Password turn on HTTP basic authentication for every request (both empty: none;
	// then only host names that are IP addresses or localhost are answered, against DNS
	// rebinding).
	User, Password string
	// Status returns what /api/status serves (the data `gotfs status --json` prints); nil
	// collects the status of the server's own torrents.
	Status func() status.Mount
	// Control, with a password set, enables POST and DELETE on /api/torrents.
	Control Control
	// MaxReadahead and HeadTail are each request's fetch.ReaderOptions, as a mount's open files
	// get them.
	MaxReadahead, HeadTail int64
	// ReadTimeout fails a request whose body waits longer than this for a piece (0: the
	// request waits until the data comes or the client goes away).
	ReadTimeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Server serves torrents over HTTP. Add shows a torrent; Serve answers on a listener until
// Close.
type Server struct {
	opts Options
	log  *slog.Logger
	http *http.Server
	// userSum and passSum are SHA-256 sums of the credentials, compared in constant time.
	userSum, passSum [32]byte
	auth             bool

	ctx    context.Context // cancelled by Close: waiting bodies end at once
	cancel context.CancelFunc

	mu       sync.Mutex
	torrents map[string]*served // by entry name
	closed   bool
	active   sync.WaitGroup // requests that may read a cache file
}

// served is one torrent the server shows.
type served struct {
	name string
	t    *fetch.Torrent
	root *node
	// ctx ends the torrent's requests when it is removed; active counts them.
	ctx    context.Context
	cancel context.CancelFunc
	active sync.WaitGroup
}

// New returns a server with no torrents.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, torrents: map[string]*served{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.User != "" || opts.Password != "" {
		s.auth = true
		s.userSum, s.passSum = sha256.Sum256([]byte(opts.User)), sha256.Sum256([]byte(opts.Password))
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// Add shows torrent t under name, the entry name a mount gives it (fusefs.FS.Add); an empty
// name, or one the server itself answers (such as "api"), is chosen as a mount would choose it
// (torrentfile.Metainfo.EntryName). It returns the name used.
func (s *Server) Add(t *fetch.Torrent, name string) (string, error) {
	mi := t.Metainfo()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("add torrent: HTTP server is closed")
	}
	taken := func(n string) bool { return reserved[n] || s.torrents[n] != nil }
	if name == "" || taken(name) {
		var err error
		if name, err = mi.EntryName(taken); err != nil {
			return "", fmt.Errorf("add torrent %s: %w", mi.Info.Name, err)
		}
	}
	root, err := buildTree(name, &mi.Info)
	if err != nil {
		return "", err
	}
	e := &served{name: name, t: t, root: root}
	e.ctx, e.cancel = context.WithCancel(s.ctx)
	s.torrents[name] = e
	return name, nil
}

// Remove stops serving the torrent shown under name: its requests in progress end, and
// Remove returns once none reads its storage any more. It reports whether there was one.
func (s *Server) Remove(name string) bool {
	s.mu.Lock()
	e := s.torrents[name]
	delete(s.torrents, name)
	s.mu.Unlock()
	if e == nil {
		return false
	}
	e.cancel()
	e.active.Wait()
	return true
}

// entries returns the torrents shown, sorted by name.
func (s *Server) entries() []*served {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*served, 0, len(s.torrents))
	for _, e := range s.torrents {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// enter looks up the torrent named name and counts a request that may read its storage;
// leave ends it. It fails once the server is closing or the torrent removed.
func (s *Server) enter(name string) (*served, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.torrents[name]
	if s.closed || e == nil {
		return nil, false
	}
	s.active.Add(1)
	e.active.Add(1)
	return e, true
}

func (s *Server) leave(e *served) {
	e.active.Done()
	s.active.Done()
}

// status is what /api/status serves.
func (s *Server) status() status.Mount {
	if s.opts.Status != nil {
		return s.opts.Status()
	}
	var entries []status.Entry
	for _, e := range s.entries() {
		entries = append(entries, status.Entry{Name: e.name, Torrent: e.t})
	}
	return status.Collect(entries)
}

// Serve answers requests on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server: waiting bodies end at once, requests get a moment to finish, then
// their connections are cut. When it returns, no request reads a storage any more, so the
// caller may close the torrents.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	s.active.Wait()
	return err
}

// Handler returns the server's HTTP handler (Serve uses it; tests may call it directly).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveStatusPage)
	mux.HandleFunc("GET /api/status", s.serveStatus)
	mux.HandleFunc("GET /"+playlistName, s.servePlaylist)
	if s.auth && s.opts.Control != nil {
		mux.HandleFunc("POST /api/torrents", s.addTorrent)
		mux.HandleFunc("DELETE /api/torrents/{name}", s.removeTorrent)
	}
	mux.HandleFunc("GET /api/", http.NotFound)
	mux.HandleFunc("GET /", s.serveFiles)
	return s.guard(mux)
}

// guard checks the credentials, or without them the Host header, before any handler.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth {
			user, pass, ok := r.BasicAuth()
			u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
			// Both compared every time, so the time does not tell which one was wrong.
			good := subtle.ConstantTimeCompare(u[:], s.userSum[:]) & subtle.ConstantTimeCompare(p[:], s.passSum[:])
			if !ok || good != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="gotfs", charset="UTF-8"`)
				http.Error(w, "gotfs: authentication required", http.StatusUnauthorized)
				return
			}
		} else if !localHost(r.Host) {
			// Without a password a page of another site that resolves its own name to this
			// address (DNS rebinding) could read everything: only names that cannot be
			// rebound are answered.
			http.Error(w, "gotfs: without --http-auth only IP addresses and localhost are answered as host names", http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names an IP address or localhost.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
