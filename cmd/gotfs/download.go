package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/cache"
	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/torrentfile"
)

// statusEvery is how often a running command looks at the engine.
const statusEvery = 250 * time.Millisecond

// downloadWritebackEvery is how much of a file a download writes between two starts of the
// kernel's writeback (cache.Options.WritebackEvery).
const downloadWritebackEvery = 32 << 20

func newDownloadCmd(a *app) *cobra.Command {
	var (
		ef       engineFlags
		out      string
		includes []string
		asJSON   bool
		seed     bool
		check    bool
		sparse   bool
	)
	cmd := &cobra.Command{
		Use:   "download TORRENT|MAGNET",
		Short: "Download a torrent into a folder",
		Long: `Download a torrent into DIR/<name> (-o DIR, default the current folder). Running it again after
an interruption (even kill -9) reuses every verified piece; files already in DIR are checked,
never overwritten with unverified bytes.`,
		Example: `  gotfs download ubuntu.torrent -o ~/Downloads
  gotfs download album.torrent --include '*.flac' --include 'cover.jpg'
  gotfs download big.torrent --json --seed
  gotfs download 'magnet:?xt=urn:btih:...&tr=...' -o ~/Downloads`,
		Args: exactArgs("TORRENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Everything the command line says is checked before a socket is opened.
			src, err := readTorrentSource(a, args[0])
			if err != nil {
				return err
			}
			if src.mi != nil {
				if _, err := includeFilter(src.mi, includes); err != nil {
					return err
				}
			}
			root, err := ef.root()
			if err != nil {
				return err
			}
			peers, err := ef.peerAddrs()
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(out)
			if err != nil {
				return fmt.Errorf("output folder %s: %w", out, err)
			}
			if err := checkWritable(dir); err != nil {
				return err
			}
			eng, mi, err := ef.startAndResolve(ctx, a, src)
			if err != nil {
				return err
			}
			defer eng.Close()
			include, err := includeFilter(mi, includes)
			if err != nil {
				return err
			}
			bar := newCountProgress(a.stderr, "checking")
			st, err := cache.Open(&mi.Info, cache.Options{
				DataDir: dir, RecordPath: downloadRecordPath(root, mi.InfoHash, dir), InfoHash: mi.InfoHash,
				Logger: a.log, Progress: func(done, total int) { bar.update(int64(done), int64(total), "pieces") },
				// The download waits for every byte to reach the disk before it exits: start
				// writing back as it goes.
				WritebackEvery: downloadWritebackEvery,
				// Its writes run at full speed from every peer, and nothing waits behind them.
				InlineIO: true,
			})
			bar.finish()
			if err != nil {
				return err
			}
			defer st.Close()
			if check {
				bar := newCountProgress(a.stderr, "checking")
				err := st.Check(ctx, func(done, total int) { bar.update(int64(done), int64(total), "pieces") })
				bar.finish()
				if err != nil {
					return err
				}
			}
			if !sparse {
				if err := preallocate(st, include); err != nil {
					return err
				}
			}
			tor, err := eng.client.AddTorrent(mi, fetch.TorrentOptions{Storage: st, Peers: peers, Background: true, Include: include})
			if err != nil {
				return err
			}
			start := time.Now()
			startStats := tor.Stats()
			wantBytes := wantedBytes(mi, include)
			if err := waitDownload(ctx, a, tor, wantBytes); err != nil {
				eng.Close()
				return err
			}
			s := tor.Stats()
			sum := downloadSummary{
				Name: mi.Info.Name, InfoHash: fmt.Sprintf("%x", mi.InfoHash), Output: filepath.Join(dir, mi.Info.Name),
				Size: wantBytes, Downloaded: s.Downloaded - startStats.Downloaded, AlreadyHad: startStats.VerifiedBytes,
				Seconds: time.Since(start).Seconds(), PeersUsed: s.PeersSeen, PiecesFetched: s.PiecesFetched,
				HashFailures: s.HashFailures, Banned: s.Banned, WebSeeds: webSeedSummaries(tor),
			}
			if sum.Seconds > 0 {
				sum.RateBytesPerSec = float64(sum.Downloaded) / sum.Seconds
			}
			if err := st.Sync(); err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(a.stdout, sum); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "%s: %s in %s (%s/s), %d peers, %d pieces fetched, %s already on disk\n",
					sum.Output, formatSize(sum.Size), time.Duration(sum.Seconds*float64(time.Second)).Round(time.Millisecond),
					formatSize(int64(sum.RateBytesPerSec)), sum.PeersUsed, sum.PiecesFetched, formatSize(sum.AlreadyHad))
			}
			if seed {
				return seedUntilDone(ctx, a, tor)
			}
			return nil
		},
	}
	ef.bind(cmd)
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", ".", "folder to download into")
	f.StringArrayVar(&includes, "include", nil, "only files matching this glob (path inside the torrent or base name); repeatable")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	f.BoolVar(&seed, "seed", false, "keep seeding after the download until interrupted")
	f.BoolVar(&check, "check", false, "re-verify every piece on disk before downloading")
	f.BoolVar(&sparse, "sparse", false, "leave the files sparse instead of reserving their disk space first")
	return cmd
}

// preallocate reserves the disk space of every file the download fills (include, nil for
// all) that is not complete yet (cache.Storage.Preallocate).
func preallocate(st *cache.Storage, include func(int) bool) error {
	for i, f := range st.Info().Files {
		if (include != nil && !include(i)) || st.VerifiedBytesInFile(i) == f.Length {
			continue
		}
		if err := st.Preallocate(i); err != nil {
			return err
		}
	}
	return nil
}

// downloadSummary is what `download --json` prints.
type downloadSummary struct {
	Name            string  `json:"name"`
	InfoHash        string  `json:"info_hash"`
	Output          string  `json:"output"`
	Size            int64   `json:"size"`
	Downloaded      int64   `json:"downloaded"`
	AlreadyHad      int64   `json:"already_had"`
	Seconds         float64 `json:"seconds"`
	RateBytesPerSec float64 `json:"rate_bytes_per_sec"`
	PeersUsed       int     `json:"peers_used"`
	PiecesFetched   int     `json:"pieces_fetched"`
	HashFailures    int     `json:"hash_failures"`
	Banned          int     `json:"banned"`
	// WebSeeds lists each web seed with what it delivered.
	WebSeeds []webSeedSummary `json:"web_seeds"`
}

// webSeedSummary is one web seed in `download --json` and `gotfs status`.
type webSeedSummary struct {
	URL             string  `json:"url"`
	Downloaded      int64   `json:"downloaded"`
	RateBytesPerSec float64 `json:"rate_bytes_per_sec"`
	Errors          int     `json:"errors"`
	BadPieces       int     `json:"bad_pieces"`
	Dropped         bool    `json:"dropped"`
	LastError       string  `json:"last_error,omitempty"`
}

// webSeedSummaries describes the torrent's web seeds.
func webSeedSummaries(t *fetch.Torrent) []webSeedSummary {
	out := []webSeedSummary{}
	for _, w := range t.WebSeeds() {
		out = append(out, webSeedSummary{URL: w.Name, Downloaded: w.Downloaded, RateBytesPerSec: w.Rate,
			Errors: w.Errors, BadPieces: w.BadPieces, Dropped: w.Dropped, LastError: w.LastError})
	}
	return out
}

// includeFilter turns --include globs into a file filter; nil means every file.
func includeFilter(mi *torrentfile.Metainfo, globs []string) (func(int) bool, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("--include %q: %w", g, err)
		}
	}
	selected := map[int]bool{}
	for _, i := range mi.Info.VisibleFiles() {
		f := mi.Info.Files[i]
		full := strings.Join(f.Path, "/")
		inner := strings.Join(f.Path[min(1, len(f.Path)-1):], "/")
		base := f.Path[len(f.Path)-1]
		for _, g := range globs {
			if m, _ := path.Match(g, full); m {
				selected[i] = true
			} else if m, _ := path.Match(g, inner); m {
				selected[i] = true
			} else if m, _ := path.Match(g, base); m {
				selected[i] = true
			}
		}
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("--include %s matches no file of %s", strings.Join(globs, ", "), mi.Info.Name)
	}
	return func(i int) bool { return selected[i] }, nil
}

func wantedBytes(mi *torrentfile.Metainfo, include func(int) bool) int64 {
	var n int64
	for _, i := range mi.Info.VisibleFiles() {
		if include == nil || include(i) {
			n += mi.Info.Files[i].Length
		}
	}
	return n
}

// waitDownload shows progress until the torrent is complete, the context ends, or storing fails.
func waitDownload(ctx context.Context, a *app, tor *fetch.Torrent, wantBytes int64) error {
	bar := newProgress(a.stderr, "downloading")
	defer bar.finish()
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	pieceBytes := tor.Metainfo().Info.Length
	for {
		s := tor.Stats()
		done := s.VerifiedBytes
		total := pieceBytes
		if wantBytes < pieceBytes {
			total = wantBytes
			done = min(done, total)
		}
		bar.update(done, total, sourcesNote(tor, s))
		if err := tor.StoreError(); err != nil {
			return fmt.Errorf("stopped: %w", err)
		}
		select {
		case <-tor.Complete():
			bar.update(total, total, sourcesNote(tor, s))
			return nil
		case <-ctx.Done():
			return errInterrupted
		case <-tick.C:
		}
	}
}

// sourcesNote says where the bytes come from, for the progress bar: "peers 3, web 1".
func sourcesNote(tor *fetch.Torrent, s fetch.Stats) string {
	note := "peers " + strconv.Itoa(s.Peers)
	web := 0
	for _, w := range tor.WebSeeds() {
		if !w.Dropped {
			web++
		}
	}
	if web > 0 {
		note += ", web " + strconv.Itoa(web)
	}
	return note
}

// seedUntilDone uploads until the context ends, printing totals now and then.
func seedUntilDone(ctx context.Context, a *app, tor *fetch.Torrent) error {
	fmt.Fprintf(a.stderr, "seeding %s; Ctrl-C to stop\n", tor.Metainfo().Info.Name)
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s := tor.Stats()
			fmt.Fprintf(a.stdout, "uploaded %s to %d peers\n", formatSize(s.Uploaded), s.PeersSeen)
			return nil
		case <-tick.C:
			s := tor.Stats()
			fmt.Fprintf(a.stderr, "uploaded %s, %d peers connected, %s/s\n", formatSize(s.Uploaded), s.Peers, formatSize(int64(s.UploadRate)))
		}
	}
}
