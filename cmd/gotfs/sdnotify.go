package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// statusNotifyEvery is how often a mount under systemd sends its progress (STATUS=).
const statusNotifyEvery = 5 * time.Second

// sdNotifier tells the service manager how the mount is doing (sd_notify(3)): one datagram
// per message to the unix socket named by $NOTIFY_SOCKET, a path or, starting with @, an
// abstract name. Without $NOTIFY_SOCKET it does nothing.
type sdNotifier struct {
	addr string // "" when not run by a service manager
	log  *slog.Logger
}

func newSDNotifier(log *slog.Logger) *sdNotifier {
	return &sdNotifier{addr: os.Getenv("NOTIFY_SOCKET"), log: log}
}

// send sends one message: newline-separated VARIABLE=value assignments.
func (n *sdNotifier) send(msg string) {
	if n.addr == "" {
		return
	}
	if err := sdNotify(n.addr, msg); err != nil {
		n.log.Warn("sd_notify", "socket", n.addr, "err", err)
	}
}

// ticker ticks every d while a service manager listens, and never otherwise.
func (n *sdNotifier) ticker(d time.Duration) *time.Ticker {
	t := time.NewTicker(d)
	if n.addr == "" {
		t.Stop()
	}
	return t
}

// sdNotify sends msg as one datagram to the notification socket addr.
func sdNotify(addr, msg string) error {
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or an @abstract name", addr)
	}
	// net maps a leading @ to the abstract namespace's leading NUL byte.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(msg))
	return err
}

// progressLine sums the mount up for STATUS=: torrents, verified bytes, peers, rates.
func (s *mountSession) progressLine() string {
	st := s.status()
	var size, verified int64
	var peers int
	var down, up float64
	for _, t := range st.Torrents {
		size += t.Size
		verified += t.VerifiedBytes
		peers += t.Peers
		down += t.DownloadRate
		up += t.UploadRate
	}
	return fmt.Sprintf("%d torrent(s), %s of %s verified, %d peers, down %s/s, up %s/s",
		len(st.Torrents), formatSize(verified), formatSize(size), peers, formatSize(int64(down)), formatSize(int64(up)))
}
