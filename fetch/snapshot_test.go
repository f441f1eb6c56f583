package fetch

import (
	"context"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
)

// TestSnapshot: a piece a read fetched shows as verified, a piece being fetched as in flight,
// a piece a reader claims as wanted, the rest as missing; the seeder shows with all its pieces.
func TestSnapshot(t *testing.T) {
	files := []testswarm.File{{Path: []string{"movie.bin"}, Size: 16 * 64 << 10}}
	l, mi, _ := readerSwarm(t, "snapshot", files, 64<<10, 11, "127.0.0.182", "127.0.0.181")
	n := mi.Info.NumPieces()
	r, err := l.t.NewReader(0, ReaderOptions{MaxReadahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Wait(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var s Snapshot
	for {
		s = l.t.Snapshot(s.Pieces)
		if len(s.Peers) == 1 && s.Peers[0].Pieces == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(s.Peers) != 1 || s.Peers[0].Pieces != n || s.Peers[0].Incoming || s.Peers[0].Addr.Addr().String() != "127.0.0.181" {
		t.Fatalf("peers %+v, want the seeder at 127.0.0.181 with %d pieces", s.Peers, n)
	}
	l.t.mu.Lock()
	l.t.pt.prio[7], l.t.pt.busy[9] = prioReadahead, true
	l.t.mu.Unlock()
	s = l.t.Snapshot(s.Pieces)
	l.t.mu.Lock()
	l.t.pt.prio[7], l.t.pt.busy[9] = prioNone, false
	l.t.mu.Unlock()
	if len(s.Pieces) != n {
		t.Fatalf("%d piece states, want %d", len(s.Pieces), n)
	}
	for i, st := range s.Pieces {
		want := PieceMissing
		switch i {
		case 0:
			want = PieceVerified
		case 7:
			want = PieceWanted
		case 9:
			want = PieceInFlight
		}
		if st != want {
			t.Errorf("piece %d: state %d, want %d", i, st, want)
		}
	}
}

// BenchmarkSnapshot: the cost of a status poll's picture of a 400,000-piece torrent.
func BenchmarkSnapshot(b *testing.B) {
	tor, _ := benchTorrent(b, 400_000, true)
	var dst []PieceState
	for b.Loop() {
		dst = tor.Snapshot(dst).Pieces
	}
}
