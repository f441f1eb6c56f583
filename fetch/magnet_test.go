package fetch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/dht"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/torrentfile"
)

// realTorrent makes random files and a real .torrent of them (with its info bytes).
func realTorrent(t testing.TB, files []testswarm.File, pieceLen int64, seed uint64) (*torrentfile.Metainfo, string) {
	t.Helper()
	src := t.TempDir()
	makeTorrent(t, src, "mag", files, pieceLen, seed)
	mi, _, err := torrentfile.Create(context.Background(), filepath.Join(src, "mag"), torrentfile.CreateOptions{PieceLength: pieceLen, NoDate: true})
	if err != nil {
		t.Fatal(err)
	}
	return mi, src
}

// startNode starts a client (with an optional DHT node) seeding or leeching mi.
func startNode(t testing.TB, ip string, mi *torrentfile.Metainfo, dataDir string, seed bool, dhtNode *dht.Server, opts TorrentOptions) *node {
	t.Helper()
	st, err := cache.Open(&mi.Info, cache.Options{DataDir: dataDir, RecordPath: filepath.Join(t.TempDir(), "rec"), ReadOnly: seed})
	if err != nil {
		t.Fatal(err)
	}
	opts.Storage = st
	return runNode(t, Config{ListenAddr: net.JoinHostPort(ip, "0"), DHT: dhtNode}, mi, opts)
}

func TestMagnetMetadataFromPeers(t *testing.T) {
	// 14 MiB in 16 KiB pieces: an info dictionary of two metadata pieces.
	files := []testswarm.File{{Path: []string{"a"}, Size: 14 << 20}, {Path: []string{"b"}, Size: 5}}
	mi, src := realTorrent(t, files, 16<<10, 11)
	if len(mi.InfoBytes) <= 16<<10 {
		t.Fatalf("info dictionary of %d bytes: want several metadata pieces", len(mi.InfoBytes))
	}
	// A liar serves an info dictionary that does not hash to the info hash.
	liarMI := *mi
	liarMI.InfoBytes = append([]byte(nil), mi.InfoBytes...)
	liarMI.InfoBytes[len(liarMI.InfoBytes)/2] ^= 1
	liar := startNode(t, "127.0.0.91", &liarMI, src, true, nil, TorrentOptions{})
	honest := startNode(t, "127.0.0.92", mi, src, true, nil, TorrentOptions{})

	c, err := NewClient(Config{ListenAddr: "127.0.0.93:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// From the liar alone nothing verifies: the fetch fails, and says why.
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer lcancel()
	_, err = c.FetchMetadata(lctx, &torrentfile.Magnet{InfoHash: mi.InfoHash}, MetadataOptions{Peers: []netip.AddrPort{liar.c.Addr()}})
	if !errors.Is(err, ErrNoMetadata) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("metadata from a liar: %v, want ErrNoMetadata naming the mismatch", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := &torrentfile.Magnet{InfoHash: mi.InfoHash, Peers: []string{liar.c.Addr().String()}}
	got, err := c.FetchMetadata(ctx, m, MetadataOptions{Peers: []netip.AddrPort{honest.c.Addr()}})
	if err != nil {
		t.Fatalf("FetchMetadata: %v", err)
	}
	if got.InfoHash != mi.InfoHash || got.Info.Length != mi.Info.Length || len(got.Info.Files) != len(mi.Info.Files) {
		t.Fatalf("metadata %x (%d bytes, %d files), want %x", got.InfoHash, got.Info.Length, len(got.Info.Files), mi.InfoHash)
	}
	// A magnet nobody serves ends with the context and a clear error.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err = c.FetchMetadata(short, &torrentfile.Magnet{InfoHash: torrentfile.Hash{1}}, MetadataOptions{Peers: []netip.AddrPort{honest.c.Addr()}})
	if err == nil {
		t.Fatal("metadata of an unknown torrent was fetched")
	}
}

func TestMagnetDownloadThroughDHTAlone(t *testing.T) {
	magnetThroughDHT(t, "127.0.0.1", [2]string{"127.0.0.101", "127.0.0.102"}, "127.0.0.103", 27)
}

// TestMagnetDownloadThroughIPv6DHT: the same over IPv6 alone, every node and peer on ::1 (BEP 32).
func TestMagnetDownloadThroughIPv6DHT(t *testing.T) {
	magnetThroughDHT(t, "::1", [2]string{"::1", "::1"}, "::1", 12)
}

// magnetThroughDHT resolves a trackerless magnet link through a DHT of our nodes and
// downloads its data: extra+1 nodes on dhtIP, each bootstrapped from the first, two seeders
// that announce through their own nodes, and a leecher that knows only the info hash.
func magnetThroughDHT(t *testing.T, dhtIP string, seedIPs [2]string, leechIP string, extra int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newNode := func(ip string, boot []string) *dht.Server {
		n, err := dht.New(dht.Config{Addr: net.JoinHostPort(ip, "0"), Bootstrap: boot, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	first := newNode(dhtIP, []string{})
	nodes := []*dht.Server{first}
	for range extra {
		n := newNode(dhtIP, []string{first.Addr().String()})
		if err := n.Bootstrap(ctx); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		nodes = append(nodes, n)
	}
	files := []testswarm.File{{Path: []string{"x"}, Size: 1 << 20}, {Path: []string{"y"}, Size: 12345}}
	mi, src := realTorrent(t, files, 32<<10, 12)
	// Two seeders announce themselves on the DHT through their own nodes (a DHT node takes a
	// peer's address from the announce's source, so each seeder's node shares its address).
	for _, ip := range seedIPs {
		n := newNode(ip, []string{first.Addr().String()})
		if err := n.Bootstrap(ctx); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		startNode(t, ip, mi, src, true, n, TorrentOptions{})
	}
	// The leecher knows nothing but the info hash and its own DHT node.
	leecherDHT := newNode(leechIP, []string{nodes[len(nodes)*2/3].Addr().String()})
	if err := leecherDHT.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	c, err := NewClient(Config{ListenAddr: net.JoinHostPort(leechIP, "0"), Logger: testLogger(t), DHT: leecherDHT})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got *torrentfile.Metainfo
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The seeders' first announce may still be under way: ask again until it lands.
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		got, err = c.FetchMetadata(lctx, &torrentfile.Magnet{InfoHash: mi.InfoHash}, MetadataOptions{})
		lcancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("metadata through the DHT: %v", err)
	}
	dst := t.TempDir()
	st, err := cache.Open(&got.Info, cache.Options{DataDir: dst, RecordPath: filepath.Join(t.TempDir(), "rec")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tor, err := c.AddTorrent(got, TorrentOptions{Storage: st, Background: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-tor.Complete():
	case <-ctx.Done():
		t.Fatalf("download through DHT peers did not finish: %+v", tor.Stats())
	}
	sameFiles(t, mi, src, dst, nil)
	if want := netip.MustParseAddr(leechIP).Is6(); leecherDHT.Addr().Addr().Is6() != want || leecherDHT.Stats().Nodes == 0 {
		t.Errorf("leecher's DHT on %v with %+v", leecherDHT.Addr(), leecherDHT.Stats())
	}
}

// TestMagnetMetadataFromIncomingPeer: a seeder we cannot find but that dials us (it got our
// address from a tracker, say) gives us the metadata while we wait for it.
func TestMagnetMetadataFromIncomingPeer(t *testing.T) {
	mi, src := realTorrent(t, []testswarm.File{{Path: []string{"a"}, Size: 1 << 20}}, 16<<10, 13)
	c, err := NewClient(Config{ListenAddr: "127.0.0.94:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		mi  *torrentfile.Metainfo
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := c.FetchMetadata(ctx, &torrentfile.Magnet{InfoHash: mi.InfoHash}, MetadataOptions{})
		done <- result{got, err}
	}()
	time.Sleep(100 * time.Millisecond) // the fetch is waiting, knowing no peer
	startNode(t, "127.0.0.95", mi, src, true, nil, TorrentOptions{Peers: []netip.AddrPort{c.Addr()}})
	r := <-done
	if r.err != nil {
		t.Fatalf("metadata from a peer that dialed us: %v", r.err)
	}
	if r.mi.InfoHash != mi.InfoHash {
		t.Fatalf("got metadata %x, want %x", r.mi.InfoHash, mi.InfoHash)
	}
}
