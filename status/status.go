// Package status describes running torrents the way `gotfs status --json` prints them and the
// HTTP status page (/api/status) serves them: one data source for both.
package status

import (
	"sort"

	"github.com/gotfs/gotfs/fetch"
)

// MaxMapCells bounds a torrent's piece map: a torrent with more pieces gets one cell per
// PiecesPerCell pieces, so a status of a 400,000-piece torrent stays a few KiB.
const MaxMapCells = 2048

// Piece map cells, one byte each. A cell of several pieces shows the most active of them: in
// flight, then wanted, then all verified, then some verified.
const (
	CellMissing  = '.' // nothing verified, nothing asked for
	CellPartial  = 'p' // some of its pieces verified (cells of several pieces only)
	CellVerified = 'v' // every piece verified
	CellWanted   = 'w' // a piece wanted: a read, a readahead window, a head/tail hint, --prefetch
	CellFetching = 'f' // a piece being fetched or verified
)

// Mount is the status of one gotfs process: a mount (with its FUSE counters) or `gotfs serve`
// (Mountpoint empty).
type Mount struct {
	Mountpoint string `json:"mountpoint"`
	PID        int    `json:"pid"`
	// Passthrough says whether fully verified files are read by the kernel from the cache
	// (FUSE passthrough); PassthroughOpens counts such opens, Reads the reads that reached gotfs.
	Passthrough      bool  `json:"passthrough"`
	PassthroughOpens int64 `json:"passthrough_opens"`
	Reads            int64 `json:"reads"`
	// MaxDownloadRate and MaxUploadRate are the caps in force (bytes per second, 0 = none).
	MaxDownloadRate int64     `json:"max_download_rate"`
	MaxUploadRate   int64     `json:"max_upload_rate"`
	Torrents        []Torrent `json:"torrents"`
}

// Torrent is one torrent's status.
type Torrent struct {
	Name           string  `json:"name"`
	InfoHash       string  `json:"info_hash"`
	Size           int64   `json:"size"`
	VerifiedBytes  int64   `json:"verified_bytes"`
	VerifiedPieces int     `json:"verified_pieces"`
	Pieces         int     `json:"pieces"`
	Peers          int     `json:"peers"`
	DownloadRate   float64 `json:"download_rate"`
	UploadRate     float64 `json:"upload_rate"`
	Downloaded     int64   `json:"downloaded"`
	Uploaded       int64   `json:"uploaded"`
	Wasted         int64   `json:"wasted"`
	Evicted        int     `json:"evicted_pieces"`
	WaitingReads   int     `json:"waiting_reads"`
	// PieceMap has one byte (Cell...) per PiecesPerCell pieces, at most MaxMapCells.
	PieceMap      string `json:"piece_map"`
	PiecesPerCell int    `json:"pieces_per_cell"`
	// PeerList is the connected peers, fastest first.
	PeerList []Peer `json:"peer_list"`
	// WebSeeds is the torrent's web seeds (url-list, httpseeds) with what each delivered.
	WebSeeds []WebSeed `json:"web_seeds"`
}

// WebSeed is one web seed of a torrent.
type WebSeed struct {
	URL          string  `json:"url"`
	DownloadRate float64 `json:"download_rate"`
	Downloaded   int64   `json:"downloaded"`
	Errors       int     `json:"errors"`
	BadPieces    int     `json:"bad_pieces"`
	Dropped      bool    `json:"dropped"`
}

// Peer is one connected peer.
type Peer struct {
	Addr         string  `json:"addr"`
	Incoming     bool    `json:"incoming"`
	Transport    string  `json:"transport"` // "utp" or "tcp"
	DownloadRate float64 `json:"download_rate"`
	UploadRate   float64 `json:"upload_rate"`
	Pieces       int     `json:"pieces"`
}

// Entry is a torrent as a mount or the HTTP server shows it: under its entry name.
type Entry struct {
	Name    string
	Torrent *fetch.Torrent
}

// Collect returns the status of the torrents, sorted by name. The caller fills in the
// Mount's own fields (mount point, PID, FUSE counters).
func Collect(entries []Entry) Mount {
	out := Mount{Torrents: make([]Torrent, 0, len(entries))}
	var scratch []fetch.PieceState
	for _, e := range entries {
		var ts Torrent
		ts, scratch = of(e, scratch)
		out.Torrents = append(out.Torrents, ts)
	}
	sort.Slice(out.Torrents, func(i, j int) bool { return out.Torrents[i].Name < out.Torrents[j].Name })
	return out
}

// of is one torrent's status; scratch is reused for its piece states and returned.
func of(e Entry, scratch []fetch.PieceState) (Torrent, []fetch.PieceState) {
	mi := e.Torrent.Metainfo()
	st := e.Torrent.Stats()
	snap := e.Torrent.Snapshot(scratch)
	per := max(1, (len(snap.Pieces)+MaxMapCells-1)/MaxMapCells)
	ts := Torrent{
		Name: e.Name, InfoHash: mi.InfoHash.Hex(), Size: mi.Info.Length,
		VerifiedBytes: st.VerifiedBytes, VerifiedPieces: st.Verified, Pieces: st.Pieces,
		Peers: st.Peers, DownloadRate: st.DownloadRate, UploadRate: st.UploadRate,
		Downloaded: st.Downloaded, Uploaded: st.Uploaded, Wasted: st.Wasted, Evicted: st.Evicted,
		WaitingReads: st.WaitingReads,
		PieceMap:     PieceMap(snap.Pieces, per), PiecesPerCell: per,
		PeerList: make([]Peer, 0, len(snap.Peers)),
	}
	for _, p := range snap.Peers {
		ts.PeerList = append(ts.PeerList, Peer{Addr: p.Addr.String(), Incoming: p.Incoming, Transport: p.Transport,
			DownloadRate: p.DownloadRate, UploadRate: p.UploadRate, Pieces: p.Pieces})
	}
	ts.WebSeeds = []WebSeed{}
	for _, w := range e.Torrent.WebSeeds() {
		ts.WebSeeds = append(ts.WebSeeds, WebSeed{URL: w.Name, DownloadRate: w.Rate, Downloaded: w.Downloaded,
			Errors: w.Errors, BadPieces: w.BadPieces, Dropped: w.Dropped})
	}
	return ts, snap.Pieces
}

// PieceMap draws piece states as cells of per pieces each (the last cell may hold fewer).
func PieceMap(states []fetch.PieceState, per int) string {
	per = max(per, 1)
	b := make([]byte, 0, (len(states)+per-1)/per)
	for lo := 0; lo < len(states); lo += per {
		b = append(b, cell(states[lo:min(lo+per, len(states))]))
	}
	return string(b)
}

// cell is the byte of one cell of pieces.
func cell(states []fetch.PieceState) byte {
	var fetching, wanted bool
	verified := 0
	for _, s := range states {
		switch s {
		case fetch.PieceInFlight:
			fetching = true
		case fetch.PieceWanted:
			wanted = true
		case fetch.PieceVerified:
			verified++
		}
	}
	switch {
	case fetching:
		return CellFetching
	case wanted:
		return CellWanted
	case verified == len(states):
		return CellVerified
	case verified > 0:
		return CellPartial
	}
	return CellMissing
}
