package tracker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// Tiers is a torrent's tracker list as BEP 12 describes it: tiers tried in order, trackers
// within a tier tried in (initially shuffled) order, and a tracker that answers moved to the
// front of its tier. Tiers is safe for concurrent use.
type Tiers struct {
	mu    sync.Mutex
	tiers [][]string
}

// TiersOption configures NewTiers.
type TiersOption func(*tiersConfig)

type tiersConfig struct {
	rng *rand.Rand
}

// WithRand makes NewTiers shuffle with r (tests use a fixed seed). Without it the shuffle
// uses math/rand/v2's global, randomly seeded generator.
func WithRand(r *rand.Rand) TiersOption {
	return func(c *tiersConfig) { c.rng = r }
}

// NewTiers copies tiers, dropping empty URLs, URLs already listed and empty tiers, and
// shuffles each tier as BEP 12 asks.
func NewTiers(tiers [][]string, opts ...TiersOption) *Tiers {
	var cfg tiersConfig
	for _, o := range opts {
		o(&cfg)
	}
	shuffle := rand.Shuffle
	if cfg.rng != nil {
		shuffle = cfg.rng.Shuffle
	}
	seen := make(map[string]bool)
	t := &Tiers{}
	for _, tier := range tiers {
		var kept []string
		for _, u := range tier {
			u = strings.TrimSpace(u)
			if u == "" || seen[u] {
				continue
			}
			seen[u] = true
			kept = append(kept, u)
		}
		if len(kept) == 0 {
			continue
		}
		shuffle(len(kept), func(i, j int) { kept[i], kept[j] = kept[j], kept[i] })
		t.tiers = append(t.tiers, kept)
	}
	return t
}

// All returns every tracker URL in the order they would be tried now.
func (t *Tiers) All() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var all []string
	for _, tier := range t.tiers {
		all = append(all, tier...)
	}
	return all
}

// Tiers returns a copy of the current tiers in their current order.
func (t *Tiers) Tiers() [][]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]string, len(t.tiers))
	for i, tier := range t.tiers {
		out[i] = append([]string(nil), tier...)
	}
	return out
}

// AllFailedError is returned by Tiers.Announce when no tracker answered; it lists each
// tracker's error in the order they were tried.
type AllFailedError struct {
	URLs   []string
	Errors []error
}

// Error implements error: it lists every tracker's failure.
func (e *AllFailedError) Error() string {
	if len(e.URLs) == 0 {
		return "no trackers to announce to"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "all %d trackers failed", len(e.URLs))
	for i := range e.URLs {
		fmt.Fprintf(&sb, "; %v", e.Errors[i])
	}
	return sb.String()
}

// Unwrap returns the individual errors.
func (e *AllFailedError) Unwrap() []error { return e.Errors }

// Announce tries the trackers tier by tier, in order within each tier, and returns the
// first answer with the URL that gave it. That tracker moves to the front of its tier. When
// every tracker fails the error is an *AllFailedError; when ctx ends first, ctx's error is
// returned (wrapped together with the failures so far).
func (t *Tiers) Announce(ctx context.Context, c *Client, req AnnounceRequest) (*AnnounceResponse, string, error) {
	failed := &AllFailedError{}
	for ti := 0; ; ti++ {
		t.mu.Lock()
		if ti >= len(t.tiers) {
			t.mu.Unlock()
			break
		}
		tier := append([]string(nil), t.tiers[ti]...)
		t.mu.Unlock()
		for _, u := range tier {
			if err := ctx.Err(); err != nil {
				if len(failed.URLs) == 0 {
					return nil, "", fmt.Errorf("announce: %w", context.Cause(ctx))
				}
				return nil, "", fmt.Errorf("announce: %w (after: %w)", context.Cause(ctx), failed)
			}
			resp, err := c.Announce(ctx, u, req)
			if err == nil {
				t.promote(ti, u)
				return resp, u, nil
			}
			failed.URLs = append(failed.URLs, u)
			failed.Errors = append(failed.Errors, err)
			if errors.Is(err, ErrClosed) {
				return nil, "", err
			}
		}
	}
	return nil, "", failed
}

// promote moves u to the front of tier ti (BEP 12).
func (t *Tiers) promote(ti int, u string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ti >= len(t.tiers) {
		return
	}
	tier := t.tiers[ti]
	for i, v := range tier {
		if v == u {
			copy(tier[1:i+1], tier[:i])
			tier[0] = u
			return
		}
	}
}
