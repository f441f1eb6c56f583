package tracker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewTiersShuffleAndCleanup(t *testing.T) {
	in := [][]string{{"a", "b", "c", "d", "e"}, {}, {"", " "}, {"f", "a", "g"}}
	t1 := NewTiers(in, WithRand(rand.New(rand.NewPCG(1, 2))))
	t2 := NewTiers(in, WithRand(rand.New(rand.NewPCG(1, 2))))
	if !slices.Equal(t1.All(), t2.All()) {
		t.Errorf("same seed, different order: %v vs %v", t1.All(), t2.All())
	}
	tiers := t1.Tiers()
	if len(tiers) != 2 || len(tiers[0]) != 5 || len(tiers[1]) != 2 {
		t.Fatalf("tiers %v", tiers)
	}
	first := slices.Sorted(slices.Values(tiers[0]))
	if !slices.Equal(first, []string{"a", "b", "c", "d", "e"}) || slices.Contains(tiers[1], "a") {
		t.Errorf("tiers %v", tiers)
	}
	if in[0][0] != "a" {
		t.Error("input modified")
	}
	// Shuffling happens: some seed gives another order than the input's.
	shuffled := false
	for seed := range uint64(20) {
		if !slices.Equal(NewTiers(in, WithRand(rand.New(rand.NewPCG(seed, 0)))).Tiers()[0], in[0]) {
			shuffled = true
			break
		}
	}
	if !shuffled {
		t.Error("tier never shuffled")
	}
	if got := NewTiers(nil).All(); len(got) != 0 {
		t.Errorf("empty tiers: %v", got)
	}
}

// trackerFarm serves announce URLs that fail or answer, and records the order of requests.
type trackerFarm struct {
	mu    sync.Mutex
	order []string
	fail  map[string]bool
	base  string
}

func newTrackerFarm(t *testing.T) *trackerFarm {
	f := &trackerFarm{fail: make(map[string]bool)}
	srv := newFakeHTTPTracker(t, func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/announce"), "/")
		f.mu.Lock()
		f.order = append(f.order, name)
		fail := f.fail[name]
		f.mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "d8:intervali60e5:peers0:e")
	})
	f.base = srv.URL
	return f
}

func (f *trackerFarm) url(name string) string { return f.base + "/" + name + "/announce" }

func (f *trackerFarm) setFail(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.fail)
	for _, n := range names {
		f.fail[n] = true
	}
}

func (f *trackerFarm) takeOrder() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.order
	f.order = nil
	return o
}

func TestTiersAnnounce(t *testing.T) {
	farm := newTrackerFarm(t)
	urls := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, farm.url(n))
		}
		return out
	}
	// Fixed order: tests build the Tiers directly instead of shuffling.
	tiers := &Tiers{tiers: [][]string{urls("a1", "a2", "a3"), urls("b1", "b2")}}
	c := testClient(t, ClientOptions{})
	ctx := context.Background()

	// All of tier one down except a3: a1, a2 tried in order, a3 answers and moves to the front.
	farm.setFail("a1", "a2")
	_, from, err := tiers.Announce(ctx, c, AnnounceRequest{})
	if err != nil || from != farm.url("a3") {
		t.Fatalf("from %s, %v", from, err)
	}
	if got := farm.takeOrder(); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Errorf("tried %v", got)
	}
	if got := tiers.Tiers()[0]; !slices.Equal(got, urls("a3", "a1", "a2")) {
		t.Errorf("tier after success %v", got)
	}

	// a3 is asked first now.
	_, from, _ = tiers.Announce(ctx, c, AnnounceRequest{})
	if got := farm.takeOrder(); from != farm.url("a3") || !slices.Equal(got, []string{"a3"}) {
		t.Errorf("tried %v", got)
	}

	// Tier one entirely down: fall through to tier two; b2 answers and leads tier two, tier
	// one keeps its order.
	farm.setFail("a1", "a2", "a3", "b1")
	_, from, err = tiers.Announce(ctx, c, AnnounceRequest{})
	if err != nil || from != farm.url("b2") {
		t.Fatalf("from %s, %v", from, err)
	}
	if got := farm.takeOrder(); !slices.Equal(got, []string{"a3", "a1", "a2", "b1", "b2"}) {
		t.Errorf("tried %v", got)
	}
	if got := tiers.All(); !slices.Equal(got, urls("a3", "a1", "a2", "b2", "b1")) {
		t.Errorf("order after fall-through %v", got)
	}

	// Everything down: the error names every tracker.
	farm.setFail("a1", "a2", "a3", "b1", "b2")
	_, _, err = tiers.Announce(ctx, c, AnnounceRequest{})
	var all *AllFailedError
	if !errors.As(err, &all) || len(all.URLs) != 5 || len(all.Errors) != 5 {
		t.Fatalf("error %v", err)
	}
	for _, n := range []string{"a1", "a2", "a3", "b1", "b2"} {
		if !strings.Contains(err.Error(), "/"+n+"/announce") {
			t.Errorf("error does not name %s: %v", n, err)
		}
	}
	if !strings.Contains(err.Error(), "503") {
		t.Errorf("error does not carry the causes: %v", err)
	}

	// Empty tiers.
	if _, _, err := NewTiers(nil).Announce(ctx, c, AnnounceRequest{}); err == nil {
		t.Error("no trackers: no error")
	}

	// A cancelled context stops the walk.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := tiers.Announce(cctx, c, AnnounceRequest{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTiersMixedTransports(t *testing.T) {
	f := newFakeUDPTracker(t, "udp4", "127.0.0.1:0")
	f.setHandler(f.standard(9, testPeers))
	farm := newTrackerFarm(t)
	farm.setFail("h")
	tiers := &Tiers{tiers: [][]string{{farm.url("h"), "udp://127.0.0.1:1", f.url()}}}
	c := testClient(t, ClientOptions{UDPRetransmitBase: 20 * time.Millisecond, UDPMaxRetransmits: 1})
	resp, from, err := tiers.Announce(context.Background(), c, AnnounceRequest{})
	if err != nil || from != f.url() || len(resp.Peers) != 2 {
		t.Fatalf("%v from %s: %v", resp, from, err)
	}
}
