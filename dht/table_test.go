package dht

import (
	"net/netip"
	"testing"
	"time"
)

// idWithPrefix returns an id sharing exactly cpl leading bits with self, with tail as its last
// byte (cpl < 152).
func idWithPrefix(self [20]byte, cpl int, tail byte) [20]byte {
	id := self
	id[cpl/8] ^= 0x80 >> (cpl % 8)
	id[19] = tail
	return id
}

func addrN(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 6881)
}

func TestCommonPrefixLen(t *testing.T) {
	a := [20]byte{0xf0}
	for _, tc := range []struct {
		b    [20]byte
		want int
	}{{[20]byte{0xf0}, 160}, {[20]byte{0x70}, 0}, {[20]byte{0xf8}, 4}, {[20]byte{0xf0, 1}, 15}, {[20]byte{0xf0, 19: 1}, 159}} {
		if got := commonPrefixLen(a, tc.b); got != tc.want {
			t.Errorf("commonPrefixLen(%x, %x) = %d, want %d", a, tc.b, got, tc.want)
		}
	}
}

func TestTableSplit(t *testing.T) {
	now := time.Unix(1e9, 0)
	self := [20]byte{0x55, 0x55}
	tb := newTable(self, now)
	// 8 far nodes (cpl 0) fill the single bucket; the 9th forces a split.
	for i := range bucketSize {
		tb.responded(idWithPrefix(self, 0, byte(i)), addrN(i), now)
	}
	if len(tb.buckets) != 1 || tb.len() != 8 {
		t.Fatalf("buckets=%d nodes=%d, want 1 and 8", len(tb.buckets), tb.len())
	}
	tb.responded(idWithPrefix(self, 3, 0), addrN(100), now)
	// Split into [cpl 0] full of far nodes, and the bucket holding our id.
	if len(tb.buckets) != 2 || len(tb.buckets[0].nodes) != 8 || len(tb.buckets[1].nodes) != 1 {
		t.Fatalf("after split: %d buckets, sizes %d/%d", len(tb.buckets), len(tb.buckets[0].nodes), len(tb.buckets[1].nodes))
	}
	// Another far node: bucket 0 is full of good nodes and cannot split: discarded (kept
	// only as a replacement), and no ping since no node is questionable.
	if p := tb.responded(idWithPrefix(self, 0, 200), addrN(200), now); p != nil {
		t.Errorf("ping asked for a bucket of good nodes")
	}
	if tb.find(idWithPrefix(self, 0, 200)) != nil || len(tb.buckets[0].replacements) != 1 {
		t.Error("new node entered a full bucket of good nodes")
	}
	// Nodes close to us keep splitting the last bucket.
	for i := range 20 {
		tb.responded(idWithPrefix(self, 1+i%12, byte(i)), addrN(300+i), now)
	}
	for i, b := range tb.buckets {
		for _, n := range b.nodes {
			if got := tb.bucketIndex(n.id); got != i {
				t.Errorf("node %x in bucket %d, belongs in %d", n.id, i, got)
			}
			if i < len(tb.buckets)-1 && commonPrefixLen(self, n.id) != i {
				t.Errorf("node with cpl %d in bucket %d", commonPrefixLen(self, n.id), i)
			}
		}
		if len(b.nodes) > bucketSize {
			t.Errorf("bucket %d holds %d nodes", i, len(b.nodes))
		}
	}
	if tb.responded(self, addrN(999), now) != nil || tb.find(self) != nil {
		t.Error("own id added")
	}
}

func TestTableReplacement(t *testing.T) {
	now := time.Unix(1e9, 0)
	self := [20]byte{0x55}
	tb := newTable(self, now)
	// Fill bucket 0 (after one split) with far nodes.
	tb.responded(idWithPrefix(self, 5, 1), addrN(1000), now)
	for i := range bucketSize {
		tb.responded(idWithPrefix(self, 0, byte(i)), addrN(i), now)
	}
	tb.responded(idWithPrefix(self, 0, 50), addrN(50), now) // forces the split
	if len(tb.buckets) < 2 || len(tb.buckets[0].nodes) != bucketSize {
		t.Fatalf("setup: %d buckets", len(tb.buckets))
	}
	// 16 minutes later every node is questionable: a newcomer makes the table ask to ping the
	// least recently seen one.
	later := now.Add(16 * time.Minute)
	tb.buckets[0].nodes[3].lastResponse = now.Add(-time.Minute) // least recently seen
	lru := tb.buckets[0].nodes[3]
	newID := idWithPrefix(self, 0, 77)
	p := tb.responded(newID, addrN(77), later)
	if p != lru {
		t.Fatalf("ping asked for %v, want the least recently seen node", p)
	}
	// It answers: good again; the next questionable node is to be pinged.
	next := tb.pingResult(p, true, later)
	if lru.status(later) != statusGood || next == nil || next == lru {
		t.Fatalf("after answer: status %v, next %v", lru.status(later), next)
	}
	// The next one fails twice: replaced by the newcomer.
	if again := tb.pingResult(next, false, later); again != next {
		t.Fatalf("first failure: got %v, want a second ping of the same node", again)
	}
	if tb.pingResult(next, false, later) != nil {
		t.Fatal("second failure asked for more pings")
	}
	if tb.find(next.id) != nil || tb.find(newID) == nil {
		t.Error("failed node not replaced by the waiting one")
	}
	// A node that becomes bad is replaced by a waiting replacement at once.
	waiting := tb.buckets[0].replacements[len(tb.buckets[0].replacements)-1]
	victim := tb.buckets[0].nodes[0]
	tb.failed(victim.id, victim.addr)
	tb.failed(victim.id, victim.addr)
	if tb.find(victim.id) != nil || tb.find(waiting.id) == nil {
		t.Error("bad node not replaced by the waiting replacement")
	}
	// Without replacements, a bad node stays until a newcomer takes its place.
	tb.buckets[0].replacements = nil
	victim = tb.buckets[0].nodes[0]
	tb.failed(victim.id, victim.addr)
	tb.failed(victim.id, victim.addr)
	if victim.status(later) != statusBad {
		t.Fatal("node not bad after two failures")
	}
	id2 := idWithPrefix(self, 0, 88)
	tb.responded(id2, addrN(88), later)
	if tb.find(id2) == nil || tb.find(victim.id) != nil {
		t.Error("bad node not replaced")
	}
	// Bad nodes are not handed out.
	for _, n := range tb.closest(victim.id, 100, later) {
		if n.ID == victim.id {
			t.Error("bad node returned by closest")
		}
	}
}

func TestNodeStatus(t *testing.T) {
	now := time.Unix(1e9, 0)
	n := &node{lastResponse: now}
	if n.status(now.Add(14*time.Minute)) != statusGood {
		t.Error("not good 14 min after a response")
	}
	if n.status(now.Add(16*time.Minute)) != statusQuestionable {
		t.Error("not questionable 16 min after a response")
	}
	n.lastQuery = now.Add(10 * time.Minute)
	if n.status(now.Add(20*time.Minute)) != statusGood {
		t.Error("a node that answered once and queried us recently is not good")
	}
	fresh := &node{lastQuery: now}
	if fresh.status(now) != statusQuestionable {
		t.Error("a node that never answered is good")
	}
	n.failures = badAfter
	if n.status(now) != statusBad {
		t.Error("not bad after failures")
	}
}

func TestTableRefresh(t *testing.T) {
	now := time.Unix(1e9, 0)
	self := [20]byte{0xa5, 0x5a}
	tb := newTable(self, now)
	for i := range 40 {
		tb.responded(idWithPrefix(self, i%5, byte(i)), addrN(i), now)
	}
	if got := tb.staleBuckets(now.Add(10 * time.Minute)); len(got) != 0 {
		t.Errorf("%d buckets stale after 10 minutes", len(got))
	}
	// Touch bucket 0 later: only the others become stale.
	tb.responded(tb.buckets[0].nodes[0].id, tb.buckets[0].nodes[0].addr, now.Add(10*time.Minute))
	stale := tb.staleBuckets(now.Add(16 * time.Minute))
	if len(stale) != len(tb.buckets)-1 {
		t.Fatalf("%d stale buckets, want %d", len(stale), len(tb.buckets)-1)
	}
	for i, id := range stale {
		if got := tb.bucketIndex(id); got != i+1 {
			t.Errorf("refresh target %x falls in bucket %d, want %d", id, got, i+1)
		}
	}
	if got := tb.staleBuckets(now.Add(17 * time.Minute)); len(got) != 0 {
		t.Errorf("refreshed buckets stale again at once: %d", len(got))
	}
	for i := range tb.buckets {
		for range 20 {
			if id := tb.randomIDInBucket(i); tb.bucketIndex(id) != i {
				t.Fatalf("random id %x for bucket %d falls in %d", id, i, tb.bucketIndex(id))
			}
		}
	}
}

func TestTableClosest(t *testing.T) {
	now := time.Unix(1e9, 0)
	tb := newTable([20]byte{}, now)
	for i := range 30 {
		tb.responded([20]byte{byte(i * 8)}, addrN(i), now)
	}
	target := [20]byte{0x41}
	got := tb.closest(target, 8, now)
	if len(got) != 8 {
		t.Fatalf("closest returned %d", len(got))
	}
	for i := 1; i < len(got); i++ {
		if xorLess(target, got[i].ID, got[i-1].ID) {
			t.Errorf("closest not sorted at %d", i)
		}
	}
	if got[0].ID[0] != 0x40 {
		t.Errorf("closest = %x, want 40...", got[0].ID)
	}
}
