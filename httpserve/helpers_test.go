package httpserve_test

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/httpserve"
	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/internal/testswarm/seeder"
	"github.com/gotfs/gotfs/torrentfile"
)

// swarm is a cold torrent (empty cache) fetched from one in-process seeder and served over
// HTTP on a loopback address of its own.
type swarm struct {
	mi     *torrentfile.Metainfo
	src    string // the seeder's folder: the files' true bytes are at src/<path>
	seeder *fetch.Client
	tor    *fetch.Torrent
	st     *cache.Storage
	srv    *httpserve.Server
	url    string // http://ip:port
}

// startSwarm serves mi (whose files are under src) from a seeder at seederIP, fetched by a
// client at leecherIP into a fresh cache and served over HTTP on leecherIP.
func startSwarm(t *testing.T, mi *torrentfile.Metainfo, src, seederIP, leecherIP string, opts httpserve.Options) *swarm {
	t.Helper()
	s := &swarm{mi: mi, src: src, seeder: seeder.Start(t, mi, src, seederIP+":0")}
	c, err := fetch.NewClient(fetch.Config{ListenAddr: leecherIP + ":0", Logger: testswarm.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	root := cache.Root{Dir: t.TempDir()}
	s.st, err = cache.Open(&mi.Info, root.Options(mi.InfoHash))
	if err != nil {
		t.Fatal(err)
	}
	s.tor, err = c.AddTorrent(mi, fetch.TorrentOptions{Storage: s.st, Peers: []netip.AddrPort{s.seeder.Addr()}, NoTrackers: true})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = testswarm.Logger(t)
	}
	s.srv = httpserve.New(opts)
	if _, err := s.srv.Add(s.tor, ""); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", leecherIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.srv.Close(); err != nil {
			t.Errorf("close HTTP server: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		c.Close()
		s.st.Close()
	})
	return s
}

// source returns the true bytes of the file at rel (below the torrent's folder).
func (s *swarm) source(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.src, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// curlResult is one answer curl got.
type curlResult struct {
	code   int
	header string
	body   []byte
}

// curl runs the real curl with args and returns the status, the headers and the body.
func curl(t *testing.T, args ...string) curlResult {
	t.Helper()
	bin := testenv.RequireBinary(t, "curl")
	dir := t.TempDir()
	hdr, body := filepath.Join(dir, "h"), filepath.Join(dir, "b")
	args = append([]string{"-sS", "-g", "--max-time", "60", "-D", hdr, "-o", body, "-w", "%{http_code}"}, args...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("curl %q: %v: %s", args, err, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("curl %q: status %q", args, out)
	}
	h, _ := os.ReadFile(hdr)
	b, _ := os.ReadFile(body)
	return curlResult{code: code, header: string(h), body: b}
}

// headerValue returns the value of header name in a response's header block ("" if absent).
func (r curlResult) headerValue(name string) string {
	for _, line := range strings.Split(r.header, "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (r curlResult) mustBe(t *testing.T, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: status %d, want %d; headers:\n%s\nbody: %s", what, r.code, code, r.header, bytes.TrimSpace(r.body[:min(len(r.body), 300)]))
	}
}
