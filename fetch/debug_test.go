package fetch

import (
	"fmt"
	"strings"
)

// debugString describes the engine's state, for test failures.
func (t *Torrent) debugString() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "have %d/%d, downloads %d, verifying or evicting %d, waiters %d\n", t.store.VerifiedCount(), t.info.NumPieces(), len(t.downloads), countTrue(t.pt.busy)-len(t.downloads), len(t.waiters))
	for i := range t.waiters {
		fmt.Fprintf(&b, "  waiter piece %d prio %d avail %d", i, t.pt.prio[i], t.pt.avail[i])
		if d := t.downloads[i]; d != nil {
			fmt.Fprintf(&b, " download got %d/%d reqs %v", d.nGot, d.nBlocks, d.reqs)
		}
		b.WriteString("\n")
	}
	for p := range t.peers {
		fmt.Fprintf(&b, "  peer %v has %d choking-us %v interested %v depth %d requests %d snubbed %v\n",
			p.addr, p.hasCount, p.peerChoking, p.amInterested, p.depth, len(p.requests), p.snubbed)
	}
	return b.String()
}

func countTrue(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}
