package dht

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/torrentfile"
)

// TestAria2 seeds a torrent with aria2c, its DHT bootstrapped from our node, and finds aria2c's
// peer address with GetPeers. aria2c works with loopback DHT nodes as is.
func TestAria2(t *testing.T) {
	bin := testenv.RequireBinary(t, "aria2c")
	// aria2c bootstraps from us, looks up the torrent (get_peers to our node, which hands it a
	// token) and sends announce_peer: we find it in our own peer store, and at least one
	// announce reached us.
	t.Run("announce_peer", func(t *testing.T) {
		s := runAria2(t, bin)
		if st := s.Stats(); st.Peers < 1 {
			t.Errorf("aria2c's announce_peer was not stored: %+v", st)
		}
	})
	// With --bt-external-ip, aria2c's node returns its own peer in the values of its get_peers
	// answers: our lookup finds it by querying aria2c's node.
	t.Run("values", func(t *testing.T) {
		runAria2(t, bin, "--bt-external-ip=127.0.0.1")
	})
	// The same over IPv6 alone (BEP 32): aria2c's DHT6 on ::1 bootstraps from our IPv6 node and
	// announces there.
	t.Run("dht6", func(t *testing.T) {
		s := runAria2(t, bin, "--enable-dht=false", "--enable-dht6=true", "--disable-ipv6=false", "--dht-listen-addr6=::1")
		if st := s.Stats(); st.Peers < 1 || st.Nodes6 != st.Nodes {
			t.Errorf("aria2c's IPv6 announce_peer was not stored: %+v", st)
		}
	})
}

// runAria2 runs the aria2c seeder with extra arguments until our node's GetPeers finds it, and
// returns our node.
func runAria2(t *testing.T, bin string, extra ...string) *Server {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("gotfs dht test "), 10000)
	if err := os.WriteFile(filepath.Join(data, "file.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	mi, raw, err := torrentfile.Create(ctx, filepath.Join(data, "file.bin"), torrentfile.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	torrentPath := filepath.Join(dir, "file.torrent")
	if err := os.WriteFile(torrentPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	hash := [20]byte(mi.InfoHash)

	v6 := slices.Contains(extra, "--enable-dht6=true")
	listen, entry, host := "127.0.0.1:0", "--dht-entry-point=", "127.0.0.1"
	if v6 {
		listen, entry, host = "[::1]:0", "--dht-entry-point6=", "::1"
	}
	s := newTestServer(t, listen, func(c *Config) { c.QueryTimeout = 2 * time.Second })
	dhtPort, btPort := testenv.FreePort(t, "127.0.0.1"), testenv.FreePort(t, "127.0.0.1")
	out := &testenv.LockedBuffer{}
	cmd := exec.Command(bin, append([]string{
		"--enable-dht=true",
		"--dht-listen-port=" + strconv.Itoa(dhtPort),
		entry + s.Addr().String(),
		"--dht-file-path=" + filepath.Join(dir, "dht.dat"),
		"--listen-port=" + strconv.Itoa(btPort),
		"--bt-enable-lpd=false",
		"--enable-peer-exchange=false",
		"--seed-ratio=0.0",
		"--bt-seed-unverified=true",
		"--check-integrity=false",
		"--disable-ipv6=true",
		"--enable-dht6=false",
		"--no-conf=true",
		"--console-log-level=debug",
		"--summary-interval=0",
		"--dir=" + data,
		"-V",
		torrentPath}, extra...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("aria2c output:\n%s", out.String())
		}
	}()

	want := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(btPort))
	var found []netip.AddrPort
	for {
		select {
		case <-exited:
			t.Fatalf("aria2c exited: %v", cmd.ProcessState)
		case <-ctx.Done():
			t.Fatalf("aria2c's peer %v not found (found %v); stats %+v", want, found, s.Stats())
		case <-time.After(500 * time.Millisecond):
		}
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.GetPeers(lctx, hash, func(ps []netip.AddrPort) { found = append(found, ps...) })
		lcancel()
		for _, p := range found {
			if p == want {
				t.Logf("found aria2c at %v; stats %+v", p, s.Stats())
				return s
			}
		}
		if err != nil {
			t.Logf("GetPeers: %v; stats %+v", err, s.Stats())
		}
	}
}
