package status

import (
	"testing"

	"github.com/gotfs/gotfs/fetch"
)

func TestPieceMap(t *testing.T) {
	const (
		m = fetch.PieceMissing
		w = fetch.PieceWanted
		f = fetch.PieceInFlight
		v = fetch.PieceVerified
	)
	states := []fetch.PieceState{v, v, v, m, m, m, w, v, f, w, v, v, v}
	for _, tc := range []struct {
		per  int
		want string
	}{
		{1, "vvv...wvfwvvv"},
		{3, "v.fwv"}, // [vvv] [mmm] [wvf] [wvv] [v]
		{13, "f"},    // in flight wins
		{0, "vvv...wvfwvvv"},
	} {
		if got := PieceMap(states, tc.per); got != tc.want {
			t.Errorf("PieceMap(per %d) = %q, want %q", tc.per, got, tc.want)
		}
	}
	if got := PieceMap([]fetch.PieceState{v, m, m, v, v, v, v}, 2); got != "ppvv" {
		t.Errorf("partial cells: %q, want %q", got, "ppvv")
	}
	if got := PieceMap(nil, 4); got != "" {
		t.Errorf("no pieces: %q", got)
	}
}
