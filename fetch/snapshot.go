package fetch

import (
	"net/netip"
	"sort"
)

// PieceState is what the engine knows of one piece, for pictures of a torrent's progress.
type PieceState byte

// Piece states, from least to most done.
const (
	// PieceMissing: not verified and nobody asks for it now.
	PieceMissing PieceState = iota
	// PieceWanted: a read waits on it, it is in a reader's readahead window or an open file's
	// head or tail, or it is wanted in the background (a download, --prefetch).
	PieceWanted
	// PieceInFlight: being fetched or verified (or, briefly, evicted).
	PieceInFlight
	// PieceVerified: its SHA-1 matched; reads may be served from it.
	PieceVerified
)

// PeerSnapshot is one connected peer as the status page shows it.
type PeerSnapshot struct {
	Addr     netip.AddrPort
	Incoming bool // it connected to us
	// Transport is "utp" or "tcp".
	Transport string
	// DownloadRate and UploadRate are bytes per second, smoothed (as in Stats).
	DownloadRate, UploadRate float64
	// Pieces is how many pieces the peer says it has.
	Pieces int
}

// Snapshot is a picture of a torrent at one moment: the state of every piece and the
// connected peers, fastest first.
type Snapshot struct {
	Pieces []PieceState
	Peers  []PeerSnapshot
}

// Snapshot returns the state of every piece, reusing dst when it is large enough, and the
// connected peers. It changes nothing; it costs a pass over the pieces under the torrent's lock
// and one outside it (BenchmarkSnapshot, 400,000 pieces: 1 ms in all), so it is for status
// pages polled every second or so, not for every read.
func (t *Torrent) Snapshot(dst []PieceState) Snapshot {
	n := t.info.NumPieces()
	if cap(dst) < n {
		dst = make([]PieceState, n)
	}
	dst = dst[:n]
	t.mu.Lock()
	for i := range dst {
		switch {
		case t.pt.busy[i]:
			dst[i] = PieceInFlight
		case t.pt.prio[i] != prioNone:
			dst[i] = PieceWanted
		default:
			dst[i] = PieceMissing
		}
	}
	peers := make([]PeerSnapshot, 0, len(t.peers))
	for p := range t.peers {
		peers = append(peers, PeerSnapshot{Addr: p.addr, Incoming: p.incoming, Transport: p.transport,
			DownloadRate: p.downRate, UploadRate: p.upRate, Pieces: p.hasCount})
	}
	t.mu.Unlock()
	// The storage's bit is the one record of verified, read without the lock (a piece being
	// verified is busy until its bit is set, so it shows as in flight, then as verified).
	for i := range dst {
		if t.store.Verified(i) {
			dst[i] = PieceVerified
		}
	}
	sort.Slice(peers, func(a, b int) bool {
		pa, pb := peers[a], peers[b]
		if pa.DownloadRate+pa.UploadRate != pb.DownloadRate+pb.UploadRate {
			return pa.DownloadRate+pa.UploadRate > pb.DownloadRate+pb.UploadRate
		}
		return pa.Addr.String() < pb.Addr.String()
	})
	return Snapshot{Pieces: dst, Peers: peers}
}
