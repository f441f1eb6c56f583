package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/status"
	"github.com/gotfs/gotfs/torrentfile"
)

// The control socket of a running mount (§11 of docs/DESIGN.md): a client sends one request,
// a JSON object on one line, and reads one JSON reply; then the connection is closed.
// Operations other than status change the mount and are taken only from the mount's own user
// or root (SO_PEERCRED).

// torrentControl is what a running mount lets other programs change: the control socket
// serves it (gotfs add, gotfs remove), and an HTTP API can (POST and DELETE /api/torrents).
type torrentControl interface {
	// Add shows a torrent in the mount and returns its entry's name: source is a magnet
	// link, or names the .torrent file whose bytes torrent holds (the mount never opens a
	// path it is given). A magnet's metadata is fetched first, until ctx ends.
	Add(ctx context.Context, source string, torrent []byte) (name string, err error)
	// Remove takes the torrent with this entry name or info hash (hex) out of the mount. Its
	// entry goes at once; files open from it keep working until closed (openFiles counts
	// them), and then the torrent stops and its cache lock is freed.
	Remove(ctx context.Context, nameOrHash string) (name string, openFiles int, err error)
}

var _ torrentControl = (*mountSession)(nil)

// Control operations.
const (
	opStatus = "status"
	opAdd    = "add"
	opRemove = "remove"
	opSet    = "set"
)

// controlRequest is one request on the control socket.
type controlRequest struct {
	Op string `json:"op"`
	// Source is the magnet link or the .torrent's name (add), or the entry name or info
	// hash (remove).
	Source string `json:"source,omitempty"`
	// Torrent holds the .torrent file's bytes (add).
	Torrent []byte `json:"torrent,omitempty"`
	// MaxDownloadRate and MaxUploadRate are the new caps in bytes per second (set); nil
	// leaves a cap as it is, 0 removes it.
	MaxDownloadRate *int64 `json:"max_download_rate,omitempty"`
	MaxUploadRate   *int64 `json:"max_upload_rate,omitempty"`
}

// controlReply answers a controlRequest.
type controlReply struct {
	Error     string        `json:"error,omitempty"`
	Status    *status.Mount `json:"status,omitempty"`     // status
	Name      string        `json:"name,omitempty"`       // add, remove: the entry's name
	OpenFiles int           `json:"open_files,omitempty"` // remove
	Limits    *rateLimits   `json:"limits,omitempty"`     // set
}

// rateLimits are the caps in force, in bytes per second (0 = none).
type rateLimits struct {
	MaxDownloadRate int64 `json:"max_download_rate"`
	MaxUploadRate   int64 `json:"max_upload_rate"`
}

// maxControlRequest bounds a request: the largest .torrent, in base64, and some room.
const maxControlRequest = torrentfile.MaxTorrentSize/3*4 + 64<<10

// controlReadTimeout bounds the wait for a request.
const controlReadTimeout = 5 * time.Second

// parseControlRequest reads one request (hostile input: any bytes a local process sends).
func parseControlRequest(line []byte) (controlRequest, error) {
	var req controlRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return req, err
	}
	switch req.Op {
	case "", opStatus, opAdd, opRemove, opSet:
	default:
		return req, fmt.Errorf("unknown operation %q", req.Op)
	}
	if (req.MaxDownloadRate != nil && *req.MaxDownloadRate < 0) || (req.MaxUploadRate != nil && *req.MaxUploadRate < 0) {
		return req, errors.New("a rate cannot be negative")
	}
	return req, nil
}

// serveControl answers each connection on ln until ln is closed; ctx ends long operations
// (a magnet's metadata) when the mount stops.
func (s *mountSession) serveControl(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.handleControl(ctx, c)
	}
}

func (s *mountSession) handleControl(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(controlReadTimeout))
	br := bufio.NewReader(io.LimitReader(c, maxControlRequest))
	var req controlRequest
	line, err := br.ReadBytes('\n')
	if err == nil || (errors.Is(err, io.EOF) && len(line) > 0) {
		req, err = parseControlRequest(line)
	}
	var rep controlReply
	if err != nil {
		rep.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		c.SetReadDeadline(time.Time{})
		// The client hanging up (Ctrl-C on gotfs add) cancels what it asked for.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			var b [1]byte
			c.Read(b[:])
			cancel()
		}()
		rep = s.do(ctx, c, &req)
	}
	c.SetWriteDeadline(time.Now().Add(controlReadTimeout))
	json.NewEncoder(c).Encode(rep)
}

// do carries out one request from the peer at the other end of c.
func (s *mountSession) do(ctx context.Context, c net.Conn, req *controlRequest) controlReply {
	var rep controlReply
	if req.Op != opStatus && req.Op != "" {
		if err := checkPeerUser(c); err != nil {
			rep.Error = err.Error()
			return rep
		}
	}
	var err error
	switch req.Op {
	case opStatus, "":
		st := s.status()
		rep.Status = &st
	case opAdd:
		rep.Name, err = s.Add(ctx, req.Source, req.Torrent)
	case opRemove:
		rep.Name, rep.OpenFiles, err = s.Remove(ctx, req.Source)
	case opSet:
		l := s.client.RateLimits()
		if req.MaxDownloadRate != nil {
			l.Download = *req.MaxDownloadRate
		}
		if req.MaxUploadRate != nil {
			l.Upload = *req.MaxUploadRate
		}
		s.client.SetRateLimits(l)
		s.a.log.Info("rate caps changed", "max_download_rate", l.Download, "max_upload_rate", l.Upload)
		lim := rateLimitsOf(s.client)
		rep.Limits = &lim
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep
}

// checkPeerUser lets only the mount's own user, or root, change the mount.
func checkPeerUser(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a local connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("permission denied: the mount belongs to uid %d", os.Geteuid())
	}
	return nil
}

// Add implements torrentControl.
func (s *mountSession) Add(ctx context.Context, source string, torrent []byte) (string, error) {
	var mi *torrentfile.Metainfo
	var raw []byte
	switch {
	case torrent != nil:
		var err error
		if mi, err = torrentfile.ParseBytes(torrent); err != nil {
			return "", fmt.Errorf("%s: %w", source, err)
		}
		raw = torrent
	case isMagnet(source):
		src, err := readTorrentSource(s.a, source)
		if err != nil {
			return "", err
		}
		if mi, raw, err = s.flags.engine.load(ctx, s.a, s.eng, src); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("add %q: want a magnet link or a .torrent file's bytes", source)
	}
	return s.addTorrent(source, mi, raw)
}

// Remove implements torrentControl.
func (s *mountSession) Remove(ctx context.Context, nameOrHash string) (string, int, error) {
	s.mu.Lock()
	k := -1
	for i, mt := range s.torrents {
		h := mt.tor.Metainfo().InfoHash
		if mt.name == nameOrHash || strings.EqualFold(hex.EncodeToString(h[:]), nameOrHash) {
			k = i
			break
		}
	}
	if k < 0 {
		s.mu.Unlock()
		return "", 0, fmt.Errorf("%s: no such torrent (gotfs status lists them)", nameOrHash)
	}
	mt := s.torrents[k]
	s.torrents = append(s.torrents[:k], s.torrents[k+1:]...)
	s.removing[mt] = true
	s.mu.Unlock()

	if s.http != nil {
		s.http.srv.Remove(mt.name) // ends its HTTP requests: none reads the storage after this
	}
	var idle <-chan struct{}
	open := 0
	if s.fs != nil {
		var err error
		if idle, open, err = s.fs.Remove(mt.tor.Metainfo().InfoHash); err != nil {
			return "", 0, err
		}
	}
	s.a.log.Info("torrent removed", "name", mt.name, "open_files", open)
	if open == 0 {
		return mt.name, 0, s.closeRemoved(mt)
	}
	// Files still open keep it running; it stops with the last of them (or the mount).
	go func() {
		select {
		case <-idle:
			if err := s.closeRemoved(mt); err != nil {
				s.a.log.Warn("stop removed torrent", "name", mt.name, "err", err)
			}
		case <-s.stopping:
		}
	}()
	return mt.name, open, nil
}

// closeRemoved stops a removed torrent, saves its state and frees its cache lock.
func (s *mountSession) closeRemoved(mt *mountedTorrent) error {
	err := mt.close()
	s.mu.Lock()
	delete(s.removing, mt)
	delete(s.byHash, mt.tor.Metainfo().InfoHash)
	s.mu.Unlock()
	return err
}

// controlSocketRoot is the cache folder whose mounts/ folder may hold a mount's socket when
// it has no runtime folder: --cache-dir, else the default (which may be unknown: the runtime
// folders are tried anyway).
func controlSocketRoot(cacheDir string) (cache.Root, error) {
	ef := engineFlags{cacheDir: cacheDir}
	root, err := ef.root()
	if err != nil && cacheDir != "" {
		return root, err
	}
	return root, nil
}

// callMount sends one request to the mount at mountpoint over its control socket and returns
// the reply; a reply that carries an error is returned as that error.
func callMount(ctx context.Context, root cache.Root, mountpoint string, req controlRequest, timeout time.Duration) (*controlReply, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %w", mountpoint, err)
	}
	if p, err := filepath.EvalSymlinks(mp); err == nil {
		mp = p
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	var c net.Conn
	var tried []string
	for _, dir := range statusSocketDirs(root) {
		path := filepath.Join(dir, statusSocketName(mp))
		if c, err = d.DialContext(ctx, "unix", path); err == nil {
			break
		}
		tried = append(tried, dir)
	}
	if c == nil {
		if fstype, err := fusefs.MountFSType(mp); err != nil || fstype != fusefs.FSType {
			return nil, fmt.Errorf("%s: not a gotfs mount", mp)
		}
		return nil, fmt.Errorf("%s: no control socket in %s (is the mount another user's, or was it mounted with another --cache-dir?)", mp, strings.Join(tried, " or "))
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("%s of %s: %w", req.Op, mp, err)
	}
	b, err = io.ReadAll(io.LimitReader(c, 64<<20))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s of %s: %w", req.Op, mp, err)
	}
	var rep controlReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s of %s: bad answer: %w", req.Op, mp, err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("%s: %s", mp, rep.Error)
	}
	return &rep, nil
}

// rateLimitsOf returns the client's caps in the control socket's form.
func rateLimitsOf(c *fetch.Client) rateLimits {
	l := c.RateLimits()
	return rateLimits{MaxDownloadRate: l.Download, MaxUploadRate: l.Upload}
}

// httpControl offers a session's Add and Remove to the HTTP API (POST and DELETE
// /api/torrents, with a password set). Over HTTP only magnet links are added: a path would
// make the server open a file the client names.
type httpControl struct{ s *mountSession }

// Add implements httpserve.Control.
func (c httpControl) Add(ctx context.Context, source string) (string, error) {
	if !isMagnet(source) {
		return "", fmt.Errorf("over HTTP only magnet links can be added (gotfs add sends a .torrent file)")
	}
	return c.s.Add(ctx, source, nil)
}

// Remove implements httpserve.Control.
func (c httpControl) Remove(ctx context.Context, nameOrHash string) error {
	_, _, err := c.s.Remove(ctx, nameOrHash)
	return err
}
