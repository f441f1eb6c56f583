package main

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/dht"
	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/tracker"
)

func newPeersCmd(a *app) *cobra.Command {
	var (
		asJSON   bool
		timeout  time.Duration
		port     uint16
		useDHT   bool
		dhtBoot  []string
		dhtAddr  string
		cacheDir string
		noDHT    bool
	)
	cmd := &cobra.Command{
		Use:   "peers TORRENT|MAGNET",
		Short: "Ask every tracker of a torrent (and the DHT) for peers",
		Long: `Announce to every tracker of the torrent (each tier, each URL) and print each peer once with
the tracker that gave it first, plus seeders and leechers where the tracker says. With --dht the
DHT is searched too.`,
		Example: `  gotfs peers ubuntu.torrent
  gotfs peers --json ubuntu.torrent
  gotfs peers --dht 'magnet:?xt=urn:btih:...'`,
		Args: exactArgs("TORRENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noDHT {
				useDHT = false
			}
			var (
				hash  torrentfile.Hash
				tiers [][]string
				left  int64 = 1
			)
			if isMagnet(args[0]) {
				m, err := torrentfile.ParseMagnet(args[0])
				if err != nil {
					return err
				}
				hash = m.InfoHash
				for _, u := range m.Trackers {
					tiers = append(tiers, []string{u})
				}
			} else {
				mi, _, err := readTorrentFile(a, args[0])
				if err != nil {
					return err
				}
				hash, tiers, left = mi.InfoHash, mi.Trackers, mi.Info.Length
			}
			urls := tracker.NewTiers(tiers).All()
			if len(urls) == 0 && !useDHT {
				return fmt.Errorf("%s has no trackers (try --dht)", args[0])
			}
			tc := tracker.NewClient(tracker.ClientOptions{Logger: a.log})
			defer tc.Close()
			peerID := [20]byte{}
			copy(peerID[:], "-GT0001-peers-cmd000")
			req := tracker.AnnounceRequest{
				InfoHash: hash, PeerID: peerID, Port: port, Left: left,
				Event: tracker.EventStarted, NumWant: 200,
			}
			type result struct {
				url  string
				resp *tracker.AnnounceResponse
				err  error
			}
			results := make([]result, len(urls))
			var wg sync.WaitGroup
			for i, u := range urls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := contextWithTimeout(cmd, timeout)
					defer cancel()
					resp, err := tc.Announce(ctx, u, req)
					results[i] = result{u, resp, err}
					if err == nil {
						// We only asked; tell the tracker we are not staying.
						stop := req
						stop.Event = tracker.EventStopped
						_, _ = tc.Announce(ctx, u, stop)
					}
				}()
			}
			var dhtPeers []netip.AddrPort
			var dhtErr error
			if useDHT {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dhtPeers, dhtErr = dhtLookup(cmd, a, hash, dhtAddr, dhtBoot, cacheDir, timeout)
				}()
			}
			wg.Wait()
			seen := map[netip.AddrPort]string{}
			var order []netip.AddrPort
			type trackerJSON struct {
				URL      string `json:"url"`
				Error    string `json:"error,omitempty"`
				Peers    int    `json:"peers"`
				Seeders  *int   `json:"seeders,omitempty"`
				Leechers *int   `json:"leechers,omitempty"`
			}
			tj := []trackerJSON{}
			ok := 0
			for _, r := range results {
				t := trackerJSON{URL: r.url}
				if r.err != nil {
					t.Error = r.err.Error()
					tj = append(tj, t)
					continue
				}
				ok++
				t.Peers = len(r.resp.Peers)
				if r.resp.Seeders >= 0 {
					t.Seeders = &r.resp.Seeders
				}
				if r.resp.Leechers >= 0 {
					t.Leechers = &r.resp.Leechers
				}
				tj = append(tj, t)
				for _, p := range r.resp.Peers {
					if _, dup := seen[p]; !dup {
						seen[p] = r.url
						order = append(order, p)
					}
				}
			}
			if useDHT {
				t := trackerJSON{URL: "dht", Peers: len(dhtPeers)}
				if dhtErr != nil {
					t.Error = dhtErr.Error()
				} else {
					ok++
				}
				tj = append(tj, t)
				for _, p := range dhtPeers {
					if _, dup := seen[p]; !dup {
						seen[p] = "dht"
						order = append(order, p)
					}
				}
			}
			sort.SliceStable(order, func(i, j int) bool { return order[i].Compare(order[j]) < 0 })
			if asJSON {
				type peerJSON struct {
					Addr    string `json:"addr"`
					Tracker string `json:"tracker"`
				}
				ps := []peerJSON{}
				for _, p := range order {
					ps = append(ps, peerJSON{p.String(), seen[p]})
				}
				if err := writeJSON(a.stdout, map[string]any{
					"info_hash": hex.EncodeToString(hash[:]), "trackers": tj, "peers": ps,
				}); err != nil {
					return err
				}
			} else {
				for _, t := range tj {
					switch {
					case t.Error != "":
						fmt.Fprintf(a.stdout, "tracker %s: error: %s\n", t.URL, t.Error)
					default:
						counts := ""
						if t.Seeders != nil && t.Leechers != nil {
							counts = fmt.Sprintf(", %d seeders, %d leechers", *t.Seeders, *t.Leechers)
						}
						fmt.Fprintf(a.stdout, "tracker %s: %d peers%s\n", t.URL, t.Peers, counts)
					}
				}
				for _, p := range order {
					fmt.Fprintf(a.stdout, "%-24s %s\n", p, seen[p])
				}
			}
			if ok == 0 {
				if cmd.Context().Err() != nil {
					return errInterrupted
				}
				return fmt.Errorf("no tracker answered (%d tried)", len(tj))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "how long to wait for each tracker")
	cmd.Flags().Uint16Var(&port, "port", 6881, "port to announce")
	cmd.Flags().BoolVar(&useDHT, "dht", false, "search the DHT too")
	// The DHT is opt-in here (a lookup takes seconds); --no-dht is accepted like on every
	// other command that finds peers, and wins over --dht.
	cmd.Flags().BoolVar(&noDHT, "no-dht", false, "do not search the DHT (the default; overrides --dht)")
	cmd.Flags().StringSliceVar(&dhtBoot, "dht-bootstrap", nil, "DHT nodes to start from, host:port,... (default: the public routers)")
	cmd.Flags().StringVar(&dhtAddr, "dht-listen", ":0", "UDP address of the DHT node; no host runs the IPv4 and IPv6 DHTs, an IPv4 or IPv6 host only that family's")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache folder, where the DHT routing table is kept (default $XDG_CACHE_HOME/gotfs)")
	return cmd
}

// dhtLookup runs a DHT node long enough to look hash up.
func dhtLookup(cmd *cobra.Command, a *app, hash torrentfile.Hash, addr string, boot []string, cacheDir string, timeout time.Duration) ([]netip.AddrPort, error) {
	ef := engineFlags{cacheDir: cacheDir}
	root, err := ef.root()
	if err != nil {
		return nil, err
	}
	cfg := dht.Config{Addr: addr, Logger: a.log}
	if err := os.MkdirAll(root.Dir, 0o755); err == nil {
		cfg.StatePath = filepath.Join(root.Dir, "dht.state")
	}
	if boot != nil {
		cfg.Bootstrap = boot
	}
	node, err := dht.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("start DHT node: %w", err)
	}
	defer node.Close()
	ctx, cancel := contextWithTimeout(cmd, timeout)
	defer cancel()
	if err := node.Bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("DHT bootstrap: %w", err)
	}
	var mu sync.Mutex
	var peers []netip.AddrPort
	err = node.GetPeers(ctx, hash, func(ps []netip.AddrPort) {
		mu.Lock()
		peers = append(peers, ps...)
		mu.Unlock()
	})
	if err != nil && len(peers) == 0 {
		return nil, fmt.Errorf("DHT lookup: %w", err)
	}
	return peers, nil
}
