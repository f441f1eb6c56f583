package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/httpserve"
)

// defaultServeHTTP is where gotfs serve listens without --http: loopback only.
const defaultServeHTTP = "127.0.0.1:8080"

// httpAuthEnv may hold --http-auth's user:password, out of sight of ps.
const httpAuthEnv = "GOTFS_HTTP_AUTH"

// httpFlags are --http and --http-auth.
type httpFlags struct {
	addr string // a listen address (listenAddr), "" for none
	auth string // USER:PASSWORD or ""
}

// httpAddrValue is --http: checked and turned into a listen address as it is parsed, so a bad
// one is a usage error before anything starts.
type httpAddrValue struct{ p *string }

func (v httpAddrValue) String() string { return *v.p }
func (v httpAddrValue) Type() string   { return "ADDR" }
func (v httpAddrValue) Set(s string) error {
	a, err := listenAddr(s)
	if err == nil {
		*v.p = a
	}
	return err
}

// httpAuthValue is --http-auth, checked as it is parsed.
type httpAuthValue struct{ p *string }

func (v httpAuthValue) String() string { return "" } // never shown back
func (v httpAuthValue) Type() string   { return "USER:PASSWORD" }
func (v httpAuthValue) Set(s string) error {
	if _, _, err := splitCredentials(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (f *httpFlags) bind(cmd *cobra.Command, def string) {
	fl := cmd.Flags()
	what := "also serve the files, playlists and a live status page over HTTP at ADDR"
	if def != "" {
		what = "serve the files, playlists and a live status page at ADDR"
	}
	f.addr = def
	fl.Var(httpAddrValue{&f.addr}, "http", what+`: PORT (on 127.0.0.1 only) or HOST:PORT; ":PORT" listens on every interface`)
	fl.Var(httpAuthValue{&f.auth}, "http-auth", "require HTTP basic authentication (or set "+httpAuthEnv+"); needed to answer host names other than IP addresses and localhost")
}

// listenAddr turns --http's value into a listen address: a bare port is loopback only, and
// every interface is used only when written so (":8080", "0.0.0.0:8080", "[::]:8080").
func listenAddr(v string) (string, error) {
	if p, err := strconv.ParseUint(v, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", strconv.FormatUint(p, 10)), nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q: want PORT, HOST:PORT or :PORT", v)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%q: bad port %q", v, port)
	}
	return net.JoinHostPort(host, port), nil
}

// credentials returns --http-auth's (or $GOTFS_HTTP_AUTH's) user and password.
func (f *httpFlags) credentials() (user, pass string, err error) {
	v := f.auth
	if v == "" {
		v = os.Getenv(httpAuthEnv)
	}
	if v == "" {
		return "", "", nil
	}
	user, pass, err = splitCredentials(v)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", httpAuthEnv, err)
	}
	return user, pass, nil
}

// splitCredentials splits USER:PASSWORD (the password may hold colons).
func splitCredentials(v string) (user, pass string, err error) {
	user, pass, ok := strings.Cut(v, ":")
	if !ok || user == "" || pass == "" {
		return "", "", errors.New("want USER:PASSWORD, both non-empty")
	}
	return user, pass, nil
}

// httpServer is a session's running HTTP server.
type httpServer struct {
	srv  *httpserve.Server
	url  string
	done chan error
}

// Close stops the server; nothing reads a storage for it afterwards. A nil server is fine.
func (h *httpServer) Close() error {
	if h == nil {
		return nil
	}
	err := h.srv.Close()
	if serr := <-h.done; serr != nil {
		err = errors.Join(err, fmt.Errorf("HTTP server: %w", serr))
	}
	return err
}

// startHTTP starts the HTTP server when --http is set.
func (s *mountSession) startHTTP() error {
	f := &s.flags.http
	if f.addr == "" {
		if f.auth != "" {
			return errors.New("--http-auth needs --http ADDR")
		}
		return nil
	}
	addr := f.addr
	user, pass, err := f.credentials()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	srv := httpserve.New(httpserve.Options{
		User: user, Password: pass,
		Status:       s.status,
		MaxReadahead: s.flags.readahead, HeadTail: fetch.HeadTailHint,
		ReadTimeout: s.flags.readTimeout,
		Logger:      s.a.log,
		Control:     httpControl{s},
	})
	h := &httpServer{srv: srv, url: "http://" + ln.Addr().String() + "/", done: make(chan error, 1)}
	go func() { h.done <- srv.Serve(ln) }()
	s.http = h
	if host, _, _ := net.SplitHostPort(addr); user == "" && !isLoopback(host) {
		fmt.Fprintf(s.a.stderr, "gotfs: warning: HTTP on %s without --http-auth: anyone who can reach it can read every file\n", ln.Addr())
	}
	return nil
}

// isLoopback reports whether a listen host is a loopback address or name.
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "localhost"
}

// show puts a torrent in the session's mount and HTTP server and returns its entry name, the
// mount's (the HTTP server takes the same one).
func (s *mountSession) show(tor *fetch.Torrent) (string, error) {
	name := ""
	if s.fs != nil {
		var err error
		if name, err = s.fs.Add(tor, time.Time{}); err != nil {
			return "", err
		}
	}
	if s.http != nil {
		var err error
		if name, err = s.http.srv.Add(tor, name); err != nil {
			return "", err
		}
	}
	return name, nil
}

// announce says what the session shows, and returns where: the mount point, else the URL.
func (s *mountSession) announce(what string) (where string) {
	if s.fs != nil {
		where = s.fs.Dir()
		if s.a.onReady != nil { // a daemon: no terminal to press Ctrl-C in
			fmt.Fprintf(s.a.stderr, "gotfs: mounted %s at %s (pid %d; gotfs unmount %s to stop)\n", what, where, os.Getpid(), where)
		} else {
			fmt.Fprintf(s.a.stderr, "gotfs: mounted %s at %s (Ctrl-C or gotfs unmount %s to stop)\n", what, where, where)
		}
	}
	if s.http != nil {
		stop := ""
		if s.fs == nil {
			stop = " (Ctrl-C to stop)"
			where = s.http.url
		}
		fmt.Fprintf(s.a.stderr, "gotfs: serving %s at %s%s\n", what, s.http.url, stop)
	}
	return where
}

// fsDone is closed when the mount was unmounted; nil (never) for gotfs serve.
func (s *mountSession) fsDone() <-chan struct{} {
	if s.fs == nil {
		return nil
	}
	return s.fs.Done()
}

func newServeCmd(a *app) *cobra.Command {
	f := mountFlags{readahead: fetch.DefaultMaxReadahead}
	cmd := &cobra.Command{
		Use:   "serve TORRENT|DIR|MAGNET",
		Short: "Serve a torrent's files over HTTP (no FUSE), with playlists and a live status page",
		Long: `Serve a torrent, or every .torrent file in a folder, over HTTP without mounting anything.
Each file is at http://ADDR/<path as a mount shows it>, with ranges (players seek), and each
request fetches the pieces under it first, as a read of a mount does. http://ADDR/ is a live
status page, /playlist.m3u lists every video and audio file (?torrent=NAME: one torrent's),
/api/status is the JSON of gotfs status --json. By default only this machine can connect
(127.0.0.1:8080); --http :8080 listens on every interface, best with --http-auth.`,
		Example: `  gotfs serve movie.torrent
  gotfs serve --http :8080 --http-auth me:secret ~/torrents/
  mpv http://127.0.0.1:8080/playlist.m3u`,
		Args: exactArgs("TORRENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if f.http.addr == "" {
				return newUsageError(cmd, "--http must name an address")
			}
			return runMount(ctx, a, args[0], "", &f)
		},
	}
	f.bindFetchFlags(cmd, defaultServeHTTP)
	return cmd
}
