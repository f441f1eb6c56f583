package dht

import (
	"bytes"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// Routing table parameters (BEP 5).
const (
	bucketSize      = 8                // k
	goodFor         = 15 * time.Minute // a node that answered within this long is good
	badAfter        = 2                // failed queries in a row that make a node bad
	refreshAfter    = 15 * time.Minute // buckets unchanged this long are refreshed
	maxBuckets      = 160
	maxReplacements = bucketSize
)

// node is one entry of the routing table.
type node struct {
	id           [20]byte
	addr         netip.AddrPort
	lastResponse time.Time // last answer to one of our queries
	lastQuery    time.Time // last query it sent us
	failures     int       // queries in a row it did not answer
	pinging      bool      // a ping to decide its fate is in flight
}

func (n *node) lastSeen() time.Time {
	if n.lastQuery.After(n.lastResponse) {
		return n.lastQuery
	}
	return n.lastResponse
}

type nodeStatus int

const (
	statusGood nodeStatus = iota
	statusQuestionable
	statusBad
)

// status classifies n as BEP 5 does: good if it answered us in the last 15 minutes, or ever
// answered us and queried us in the last 15 minutes; bad after failing several queries in a
// row; questionable otherwise.
func (n *node) status(now time.Time) nodeStatus {
	switch {
	case n.failures >= badAfter:
		return statusBad
	case now.Sub(n.lastResponse) < goodFor,
		!n.lastResponse.IsZero() && now.Sub(n.lastQuery) < goodFor:
		return statusGood
	}
	return statusQuestionable
}

// bucket holds up to k nodes, and up to k replacement candidates that answered us while the
// bucket was full.
type bucket struct {
	nodes        []*node
	replacements []*node
	lastChanged  time.Time
}

// table is a Kademlia routing table. Bucket i (except the last) holds the nodes whose id shares
// exactly i leading bits with ours; the last bucket holds every id sharing at least
// len(buckets)-1 bits, which is the bucket containing our own id, the only one ever split.
// table does no I/O and is not safe for concurrent use.
type table struct {
	self    [20]byte
	buckets []*bucket
}

func newTable(self [20]byte, now time.Time) *table {
	return &table{self: self, buckets: []*bucket{{lastChanged: now}}}
}

// commonPrefixLen returns the number of leading bits a and b share (160 when equal).
func commonPrefixLen(a, b [20]byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 160
}

func (t *table) bucketIndex(id [20]byte) int {
	return min(commonPrefixLen(t.self, id), len(t.buckets)-1)
}

func indexOf(ns []*node, id [20]byte) int {
	return slices.IndexFunc(ns, func(n *node) bool { return n.id == id })
}

// find returns the node with id, or nil.
func (t *table) find(id [20]byte) *node {
	b := t.buckets[t.bucketIndex(id)]
	if i := indexOf(b.nodes, id); i >= 0 {
		return b.nodes[i]
	}
	return nil
}

// len returns the number of nodes in the table (not counting replacements).
func (t *table) len() int {
	n := 0
	for _, b := range t.buckets {
		n += len(b.nodes)
	}
	return n
}

// responded records that the node (id, addr) answered one of our queries, adding it to the
// table when there is room. When its bucket is full and holds a questionable node, it returns
// the least recently seen such node, which the caller should ping and report with
// pingResult; the new node waits among the bucket's replacements.
func (t *table) responded(id [20]byte, addr netip.AddrPort, now time.Time) (ping *node) {
	if id == t.self {
		return nil
	}
	for {
		bi := t.bucketIndex(id)
		b := t.buckets[bi]
		if i := indexOf(b.nodes, id); i >= 0 {
			n := b.nodes[i]
			if n.addr != addr && n.status(now) == statusGood {
				return nil // a good node does not move: ignore a possibly spoofed address
			}
			n.addr, n.lastResponse, n.failures = addr, now, 0
			b.lastChanged = now
			return nil
		}
		if len(b.nodes) < bucketSize {
			b.nodes = append(b.nodes, &node{id: id, addr: addr, lastResponse: now})
			b.lastChanged = now
			b.removeReplacement(id)
			return nil
		}
		if bi == len(t.buckets)-1 && len(t.buckets) < maxBuckets {
			t.split()
			continue
		}
		// Full bucket that may not split: replace a bad node, else queue the new one and ping
		// the least recently seen questionable node.
		var worst, lru *node
		for _, n := range b.nodes {
			switch n.status(now) {
			case statusBad:
				if worst == nil || n.failures > worst.failures {
					worst = n
				}
			case statusQuestionable:
				if !n.pinging && (lru == nil || n.lastSeen().Before(lru.lastSeen())) {
					lru = n
				}
			}
		}
		if worst != nil {
			b.nodes[indexOf(b.nodes, worst.id)] = &node{id: id, addr: addr, lastResponse: now}
			b.lastChanged = now
			b.removeReplacement(id)
			return nil
		}
		b.addReplacement(&node{id: id, addr: addr, lastResponse: now})
		if lru != nil {
			lru.pinging = true
		}
		return lru
	}
}

func (b *bucket) removeReplacement(id [20]byte) {
	if i := indexOf(b.replacements, id); i >= 0 {
		b.replacements = slices.Delete(b.replacements, i, i+1)
	}
}

func (b *bucket) addReplacement(n *node) {
	b.removeReplacement(n.id)
	if len(b.replacements) == maxReplacements {
		b.replacements = slices.Delete(b.replacements, 0, 1)
	}
	b.replacements = append(b.replacements, n)
}

// split divides the last bucket: nodes sharing more bits with our id move to a new last bucket.
func (t *table) split() {
	last := len(t.buckets) - 1
	old := t.buckets[last]
	nb := &bucket{lastChanged: old.lastChanged}
	keep := &bucket{lastChanged: old.lastChanged}
	for _, n := range old.nodes {
		if commonPrefixLen(t.self, n.id) > last {
			nb.nodes = append(nb.nodes, n)
		} else {
			keep.nodes = append(keep.nodes, n)
		}
	}
	for _, n := range old.replacements {
		if commonPrefixLen(t.self, n.id) > last {
			nb.replacements = append(nb.replacements, n)
		} else {
			keep.replacements = append(keep.replacements, n)
		}
	}
	t.buckets[last] = keep
	t.buckets = append(t.buckets, nb)
	keep.promote()
	nb.promote()
}

// promote moves replacements into free slots.
func (b *bucket) promote() {
	for len(b.nodes) < bucketSize && len(b.replacements) > 0 {
		i := len(b.replacements) - 1
		b.nodes = append(b.nodes, b.replacements[i])
		b.replacements = b.replacements[:i]
	}
}

// queried records that a node in the table sent us a query. It reports whether the node is in
// the table.
func (t *table) queried(id [20]byte, addr netip.AddrPort, now time.Time) bool {
	n := t.find(id)
	if n == nil || n.addr != addr {
		return false
	}
	n.lastQuery = now
	return true
}

// wouldAdd reports whether a new node with id would get a place in the table (its bucket has
// room, can split, or holds a bad or questionable node).
func (t *table) wouldAdd(id [20]byte, now time.Time) bool {
	if id == t.self {
		return false
	}
	bi := t.bucketIndex(id)
	b := t.buckets[bi]
	if indexOf(b.nodes, id) >= 0 {
		return false
	}
	if len(b.nodes) < bucketSize || (bi == len(t.buckets)-1 && len(t.buckets) < maxBuckets) {
		return true
	}
	for _, n := range b.nodes {
		if n.status(now) != statusGood {
			return true
		}
	}
	return false
}

// failed records that the node at addr with id did not answer a query. A node that becomes bad
// is replaced by the newest replacement candidate, if any.
func (t *table) failed(id [20]byte, addr netip.AddrPort) {
	b := t.buckets[t.bucketIndex(id)]
	i := indexOf(b.nodes, id)
	if i < 0 || b.nodes[i].addr != addr {
		return
	}
	n := b.nodes[i]
	n.failures++
	if n.failures >= badAfter && len(b.replacements) > 0 {
		r := b.replacements[len(b.replacements)-1]
		b.replacements = b.replacements[:len(b.replacements)-1]
		b.nodes[i] = r
	}
}

// pingResult reports the outcome of a ping of n that responded asked for. On success n is
// good again, and the next questionable node of the bucket (if replacements still wait) is
// returned to be pinged; on failure n's failure count grows, and once bad it is replaced.
// It returns n itself when n should be pinged once more.
func (t *table) pingResult(n *node, ok bool, now time.Time) (next *node) {
	b := t.buckets[t.bucketIndex(n.id)]
	i := indexOf(b.nodes, n.id)
	if i < 0 || b.nodes[i] != n {
		n.pinging = false
		return nil
	}
	if !ok {
		n.failures++
		if n.failures < badAfter {
			return n // try once more
		}
		n.pinging = false
		if len(b.replacements) > 0 {
			r := b.replacements[len(b.replacements)-1]
			b.replacements = b.replacements[:len(b.replacements)-1]
			b.nodes[i] = r
			b.lastChanged = now
		}
		return nil
	}
	n.pinging = false
	n.lastResponse, n.failures = now, 0
	b.lastChanged = now
	if len(b.replacements) == 0 {
		return nil
	}
	var lru *node
	for _, x := range b.nodes {
		if x.status(now) == statusQuestionable && !x.pinging && (lru == nil || x.lastSeen().Before(lru.lastSeen())) {
			lru = x
		}
	}
	if lru != nil {
		lru.pinging = true
	}
	return lru
}

// closest returns up to n nodes that are not bad, closest to target first.
func (t *table) closest(target [20]byte, n int, now time.Time) []nodeInfo {
	var all []nodeInfo
	for _, b := range t.buckets {
		for _, x := range b.nodes {
			if x.status(now) != statusBad {
				all = append(all, nodeInfo{ID: x.id, Addr: x.addr})
			}
		}
	}
	sortByDistance(all, target)
	if len(all) > n {
		all = all[:n]
	}
	return all
}

// all returns every node of the table.
func (t *table) all() []nodeInfo {
	var out []nodeInfo
	for _, b := range t.buckets {
		for _, x := range b.nodes {
			out = append(out, nodeInfo{ID: x.id, Addr: x.addr})
		}
	}
	return out
}

// staleBuckets returns a random id in the range of each bucket unchanged since before
// now-refreshAfter, and marks those buckets changed so they are not returned again at once.
func (t *table) staleBuckets(now time.Time) [][20]byte {
	var out [][20]byte
	for i, b := range t.buckets {
		if now.Sub(b.lastChanged) < refreshAfter {
			continue
		}
		b.lastChanged = now
		out = append(out, t.randomIDInBucket(i))
	}
	return out
}

// randomIDInBucket returns a random id that falls in bucket i.
func (t *table) randomIDInBucket(i int) [20]byte {
	var id [20]byte
	for j := range id {
		id[j] = byte(rand.Uint32())
	}
	// Copy our first i bits, then (except in the last bucket) flip bit i.
	for bit := 0; bit < i; bit++ {
		mask := byte(0x80 >> (bit % 8))
		id[bit/8] = id[bit/8]&^mask | t.self[bit/8]&mask
	}
	if i < len(t.buckets)-1 {
		mask := byte(0x80 >> (i % 8))
		id[i/8] = id[i/8]&^mask | (^t.self[i/8])&mask
	}
	return id
}

// xorLess reports whether a is closer to target than b.
func xorLess(target, a, b [20]byte) bool {
	for i := range target {
		x, y := a[i]^target[i], b[i]^target[i]
		if x != y {
			return x < y
		}
	}
	return false
}

func sortByDistance(ns []nodeInfo, target [20]byte) {
	slices.SortFunc(ns, func(a, b nodeInfo) int {
		var da, db [20]byte
		for i := range target {
			da[i], db[i] = a.ID[i]^target[i], b.ID[i]^target[i]
		}
		return bytes.Compare(da[:], db[:])
	})
}

// rekey returns a table around a new id of ours (BEP 42 gave us one) holding the nodes of t
// that find room in it.
func (t *table) rekey(self [20]byte, now time.Time) *table {
	nt := newTable(self, now)
	for _, b := range t.buckets {
		for _, n := range b.nodes {
			nt.insert(n)
		}
	}
	return nt
}

// insert puts n into its bucket if there is room (splitting the last bucket as needed).
func (t *table) insert(n *node) bool {
	if n.id == t.self {
		return false
	}
	for {
		bi := t.bucketIndex(n.id)
		b := t.buckets[bi]
		switch {
		case indexOf(b.nodes, n.id) >= 0:
			return false
		case len(b.nodes) < bucketSize:
			b.nodes = append(b.nodes, n)
			return true
		case bi == len(t.buckets)-1 && len(t.buckets) < maxBuckets:
			t.split()
		default:
			return false
		}
	}
}
