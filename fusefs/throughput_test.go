package fusefs_test

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/fusefs"
	"github.com/gotfs/gotfs/internal/testenv"
)

// TestThroughput reads a 32 MiB file cold (from two loopback seeders) and warm (from the cache,
// after dropping the kernel's page cache of the mount by remounting), checks it, and logs the
// rates and the first-byte latency.
func TestThroughput(t *testing.T) {
	testenv.RequireFUSE(t)
	if testing.Short() {
		t.Skip("skipping: reason: -short")
	}
	s := newSwarm(t, "big", []testFile{{Path: []string{"big.bin"}, Size: 32 << 20}}, 256<<10, 30, "127.0.0.35", "127.0.0.36")
	f := s.mi.Info.Files[0]
	want := fileSHA256(t, s.srcPath(f))
	cacheDir := t.TempDir()
	for _, pass := range []string{"cold", "warm"} {
		m := mountTorrents(t, cacheDir, fusefs.Options{HeadTail: fetch.HeadTailHint}, s.peers, s.mi)
		start := time.Now()
		h, err := os.Open(m.path(f))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		if _, err := io.ReadFull(h, buf[:1]); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		h.Close()
		start = time.Now()
		if fileSHA256(t, m.path(f)) != want {
			t.Fatalf("%s read differs from the source", pass)
		}
		d := time.Since(start)
		t.Logf("%s: first byte %v, 32 MiB in %v (%.0f MB/s)", pass, first, d, float64(f.Length)/d.Seconds()/1e6)
		m.close()
	}
}
