package main

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/tracker"
)

func newPeersCmd(a *app) *cobra.Command {
	var (
		asJSON  bool
		timeout time.Duration
		port    uint16
	)
	cmd := &cobra.Command{
		Use:   "peers TORRENT",
		Short: "Ask every tracker of a torrent for peers",
		Long: `Announce to every tracker of the torrent (each tier, each URL) and print each peer once with
the tracker that gave it first, plus seeders and leechers where the tracker says.`,
		Example: `  gotfs peers ubuntu.torrent
  gotfs peers --json ubuntu.torrent`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mi, err := torrentfile.Load(args[0])
			if err != nil {
				return err
			}
			urls := tracker.NewTiers(mi.Trackers).All()
			if len(urls) == 0 {
				return fmt.Errorf("%s has no trackers", args[0])
			}
			tc := tracker.NewClient(tracker.ClientOptions{Logger: a.log})
			defer tc.Close()
			peerID := [20]byte{}
			copy(peerID[:], "-GT0001-peers-cmd000")
			req := tracker.AnnounceRequest{
				InfoHash: mi.InfoHash, PeerID: peerID, Port: port, Left: mi.Info.Length,
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
			var tj []trackerJSON
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
					"info_hash": hex.EncodeToString(mi.InfoHash[:]), "trackers": tj, "peers": ps,
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
				return fmt.Errorf("no tracker answered (%d tried)", len(urls))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "how long to wait for each tracker")
	cmd.Flags().Uint16Var(&port, "port", 6881, "port to announce")
	return cmd
}
