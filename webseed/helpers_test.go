package webseed

import (
	"bytes"
	"crypto/sha1"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackpal/bencode-go"

	"github.com/gotfs/gotfs/torrentfile"
)

// testFile is one file of a torrent made by a test; pad marks a BEP 47 pad file.
type testFile struct {
	path []string
	size int64
	pad  bool
}

// testTorrent is a torrent made by a test, with its whole byte stream (pad files as zeros).
type testTorrent struct {
	mi     *torrentfile.Metainfo
	stream []byte
	files  []testFile
}

// makeTorrent builds a torrent by hand (so that it can hold pad files): random contents, the
// metainfo encoded with bencode and parsed back with torrentfile. With one file and
// multi false it is a single-file torrent named after the file.
func makeTorrent(t testing.TB, name string, pieceLen int64, multi bool, files []testFile) *testTorrent {
	t.Helper()
	seed := sha1.Sum([]byte(name))
	rng := rand.New(rand.NewPCG(uint64(pieceLen), uint64(seed[0])<<8|uint64(seed[1])))
	tt := &testTorrent{files: files}
	var list []any
	for _, f := range files {
		data := make([]byte, f.size)
		if !f.pad {
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
		}
		tt.stream = append(tt.stream, data...)
		entry := map[string]any{"length": f.size, "path": toAny(f.path)}
		if f.pad {
			entry["attr"] = "p"
		}
		list = append(list, entry)
	}
	var pieces bytes.Buffer
	for off := int64(0); off < int64(len(tt.stream)); off += pieceLen {
		h := sha1.Sum(tt.stream[off:min(off+pieceLen, int64(len(tt.stream)))])
		pieces.Write(h[:])
	}
	info := map[string]any{"name": name, "piece length": pieceLen, "pieces": pieces.String()}
	if multi {
		info["files"] = list
	} else {
		info["length"] = files[0].size
	}
	var b bytes.Buffer
	if err := bencode.Marshal(&b, map[string]any{"info": info}); err != nil {
		t.Fatal(err)
	}
	mi, err := torrentfile.ParseBytes(b.Bytes())
	if err != nil {
		t.Fatalf("parse the test torrent: %v", err)
	}
	tt.mi = mi
	return tt
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// writeFiles writes the torrent's files, pad files left out, under dir/name/... (or dir/name
// for a single-file torrent), as a web server's document root holds them.
func (tt *testTorrent) writeFiles(t testing.TB, dir string) {
	t.Helper()
	for _, f := range tt.mi.Info.Files {
		if f.Padding {
			continue
		}
		p := filepath.Join(append([]string{dir}, f.Path...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, tt.stream[f.Offset:f.Offset+f.Length], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (tt *testTorrent) layout() *Layout { return NewLayout(&tt.mi.Info, tt.mi.InfoHash) }

// testConfig is a Config with short timeouts and back-offs, logging to the test.
func testConfig(t testing.TB) Config {
	return Config{
		ConnectTimeout: 2 * time.Second, HeaderTimeout: 2 * time.Second, StallTimeout: 2 * time.Second,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newTestClient(t testing.TB, cfg Config) *Client {
	c := NewClient(cfg)
	t.Cleanup(c.Close)
	return c
}

func newSource(t testing.TB, c *Client, l *Layout, proto Protocol, u string) *Source {
	t.Helper()
	s, err := c.NewSource(l, proto, u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startServer serves h on a free port of ip (a 127.0.0.x address) until the test ends.
func startServer(t testing.TB, ip string, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// checkPiece fetches piece i whole and checks its SHA-1.
func checkPiece(t testing.TB, s *Source, tt *testTorrent, i int) {
	t.Helper()
	buf := make([]byte, tt.mi.Info.PieceSize(i))
	if err := s.Fetch(t.Context(), i, 0, buf); err != nil {
		t.Fatalf("piece %d: %v", i, err)
	}
	if sha1.Sum(buf) != tt.mi.Info.Pieces[i] {
		t.Fatalf("piece %d from %s fails its hash", i, s.Name())
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
