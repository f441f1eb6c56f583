package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/torrentfile"
)

func newParseCmd(a *app) *cobra.Command {
	var (
		asJSON bool
		save   string
		ef     engineFlags
	)
	cmd := &cobra.Command{
		Use:   "parse TORRENT|MAGNET",
		Short: "Show what a torrent file or magnet link holds",
		Example: `  gotfs parse ubuntu.torrent
  gotfs parse --json ubuntu.torrent | jq .files
  gotfs parse 'magnet:?xt=urn:btih:...'
  gotfs parse 'magnet:?xt=urn:btih:...&tr=...' --save x.torrent   # fetches the metadata from peers`,
		Args: exactArgs("TORRENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var mi *torrentfile.Metainfo
			if isMagnet(args[0]) {
				m, err := torrentfile.ParseMagnet(args[0])
				if err != nil {
					return err
				}
				if save == "" {
					return printMagnet(a.stdout, m, asJSON)
				}
				if _, err := os.Stat(save); err == nil {
					return fmt.Errorf("%s already exists", save)
				}
				ctx := cmd.Context()
				eng, err := ef.start(ctx, a)
				if err != nil {
					return err
				}
				defer eng.Close()
				got, raw, err := ef.resolve(ctx, a, eng, &torrentSource{arg: args[0], magnet: m})
				if err != nil {
					return err
				}
				if err := writeFileAtomic(save, raw, false); err != nil {
					return err
				}
				mi = got
			} else {
				var err error
				if mi, _, err = readTorrentFile(a, args[0]); err != nil {
					return err
				}
				if save != "" {
					return fmt.Errorf("--save is for magnet links (%s is a torrent file already)", args[0])
				}
			}
			if asJSON {
				return writeJSON(a.stdout, describe(mi))
			}
			printMetainfo(a.stdout, mi)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&save, "save", "", "for a magnet link: fetch its metadata from peers and write it as a .torrent file")
	ef.bind(cmd)
	return cmd
}

func isMagnet(s string) bool { return strings.HasPrefix(strings.ToLower(s), "magnet:") }

// torrentJSON is what `parse --json` prints.
type torrentJSON struct {
	Name         string     `json:"name"`
	InfoHash     string     `json:"info_hash"`
	TotalSize    int64      `json:"total_size"`
	PieceLength  int64      `json:"piece_length"`
	Pieces       int        `json:"pieces"`
	Private      bool       `json:"private"`
	Files        []fileJSON `json:"files"`
	Trackers     [][]string `json:"trackers"`
	WebSeeds     []string   `json:"web_seeds"`
	HTTPSeeds    []string   `json:"http_seeds"`
	Nodes        []string   `json:"nodes"`
	Comment      string     `json:"comment,omitempty"`
	CreatedBy    string     `json:"created_by,omitempty"`
	CreationDate *time.Time `json:"creation_date,omitempty"`
	Source       string     `json:"source,omitempty"`
	Magnet       string     `json:"magnet"`
}

type fileJSON struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
}

func describe(mi *torrentfile.Metainfo) torrentJSON {
	j := torrentJSON{
		Name: mi.Info.Name, InfoHash: hex.EncodeToString(mi.InfoHash[:]), TotalSize: mi.Info.Length,
		PieceLength: mi.Info.PieceLength, Pieces: mi.Info.NumPieces(), Private: mi.Info.Private,
		Trackers: orEmpty(mi.Trackers), WebSeeds: orEmpty(mi.WebSeeds), HTTPSeeds: orEmpty(mi.HTTPSeeds), Nodes: orEmpty(mi.Nodes), Comment: mi.Comment,
		CreatedBy: mi.CreatedBy, Source: mi.Info.Source, Magnet: mi.Magnet().String(),
	}
	j.Files = []fileJSON{}
	if !mi.CreationDate.IsZero() {
		d := mi.CreationDate.UTC()
		j.CreationDate = &d
	}
	for _, i := range mi.Info.VisibleFiles() {
		f := mi.Info.Files[i]
		j.Files = append(j.Files, fileJSON{Path: strings.Join(f.Path, "/"), Size: f.Length, Offset: f.Offset})
	}
	return j
}

func printMetainfo(w io.Writer, mi *torrentfile.Metainfo) {
	in := &mi.Info
	fmt.Fprintf(w, "Name:         %s\n", in.Name)
	fmt.Fprintf(w, "Info hash:    %x\n", mi.InfoHash)
	fmt.Fprintf(w, "Total size:   %s (%d bytes)\n", formatSize(in.Length), in.Length)
	fmt.Fprintf(w, "Pieces:       %d × %s\n", in.NumPieces(), formatSize(in.PieceLength))
	fmt.Fprintf(w, "Private:      %v\n", in.Private)
	if !mi.CreationDate.IsZero() {
		fmt.Fprintf(w, "Created:      %s\n", mi.CreationDate.UTC().Format(time.RFC3339))
	}
	if mi.CreatedBy != "" {
		fmt.Fprintf(w, "Created by:   %s\n", mi.CreatedBy)
	}
	if mi.Comment != "" {
		fmt.Fprintf(w, "Comment:      %s\n", mi.Comment)
	}
	if in.Source != "" {
		fmt.Fprintf(w, "Source:       %s\n", in.Source)
	}
	if len(mi.Trackers) == 0 {
		fmt.Fprintf(w, "Trackers:     none\n")
	} else {
		fmt.Fprintf(w, "Trackers:\n")
		for ti, tier := range mi.Trackers {
			for _, u := range tier {
				fmt.Fprintf(w, "  tier %d: %s\n", ti+1, u)
			}
		}
	}
	for _, seeds := range []struct {
		title string
		urls  []string
	}{{"Web seeds", mi.WebSeeds}, {"HTTP seeds", mi.HTTPSeeds}} {
		if len(seeds.urls) > 0 {
			fmt.Fprintf(w, "%s:\n", seeds.title)
			for _, u := range seeds.urls {
				fmt.Fprintf(w, "  %s\n", u)
			}
		}
	}
	if len(mi.Nodes) > 0 {
		fmt.Fprintf(w, "DHT nodes:    %s\n", strings.Join(mi.Nodes, ", "))
	}
	fmt.Fprintf(w, "Files:\n")
	printTree(w, mi)
}

// printTree prints the file tree, folders once, with each file's size.
func printTree(w io.Writer, mi *torrentfile.Metainfo) {
	var prev []string
	for _, i := range mi.Info.VisibleFiles() {
		f := mi.Info.Files[i]
		dirs := f.Path[:len(f.Path)-1]
		common := 0
		for common < len(dirs) && common < len(prev) && dirs[common] == prev[common] {
			common++
		}
		for d := common; d < len(dirs); d++ {
			fmt.Fprintf(w, "  %s%s/\n", strings.Repeat("  ", d), dirs[d])
		}
		fmt.Fprintf(w, "  %s%s  (%s)\n", strings.Repeat("  ", len(dirs)), f.Path[len(f.Path)-1], formatSize(f.Length))
		prev = dirs
	}
}

func printMagnet(w io.Writer, m *torrentfile.Magnet, asJSON bool) error {
	if asJSON {
		return writeJSON(w, map[string]any{
			"info_hash": hex.EncodeToString(m.InfoHash[:]), "name": m.Name, "trackers": orEmpty(m.Trackers),
			"web_seeds": orEmpty(m.WebSeeds), "peers": orEmpty(m.Peers), "magnet": m.String(),
		})
	}
	fmt.Fprintf(w, "Info hash:    %x\n", m.InfoHash)
	if m.Name != "" {
		fmt.Fprintf(w, "Name:         %s\n", m.Name)
	}
	for _, t := range m.Trackers {
		fmt.Fprintf(w, "Tracker:      %s\n", t)
	}
	for _, s := range m.WebSeeds {
		fmt.Fprintf(w, "Web seed:     %s\n", s)
	}
	for _, p := range m.Peers {
		fmt.Fprintf(w, "Peer:         %s\n", p)
	}
	fmt.Fprintf(w, "(the file list needs the torrent's metadata, which magnet links do not carry)\n")
	return nil
}

// writeJSON prints v as indented JSON, with URLs as they are (no \u0026 for &).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// orEmpty makes a nil list an empty one, so that JSON shows [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
