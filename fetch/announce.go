package fetch

import (
	"context"
	"time"

	"github.com/gotfs/gotfs/tracker"
)

const (
	announceRetryMin = 15 * time.Second
	announceRetryMax = 10 * time.Minute
	defaultInterval  = 30 * time.Minute
	stoppedTimeout   = 5 * time.Second
	starvingInterval = 30 * time.Second
)

// announceNow asks the announcer to announce at once (completion).
func (t *Torrent) announceNow() {
	select {
	case t.announceCh <- struct{}{}:
	default:
	}
}

// announceLoop announces started, then re-announces on the tracker's interval, completed once
// when every piece is verified, and stopped when the torrent closes.
func (t *Torrent) announceLoop() {
	defer t.wg.Done()
	tiers := tracker.NewTiers(t.mi.Trackers)
	event := tracker.EventStarted
	sentCompleted := false
	failures := 0
	started := false
	for {
		req := t.announceRequest(event)
		resp, url, err := tiers.Announce(t.ctx, t.c.tracker, req)
		wait := defaultInterval
		switch {
		case t.ctx.Err() != nil:
		case err != nil:
			failures++
			wait = min(announceRetryMin<<min(failures-1, 6), announceRetryMax)
			t.log.Warn("announce failed", "err", err, "retry_in", wait)
		default:
			failures = 0
			started = true
			if event == tracker.EventCompleted {
				sentCompleted = true
			}
			if resp.Warning != "" {
				t.log.Warn("tracker warning", "tracker", url, "warning", resp.Warning)
			}
			if resp.Interval > 0 {
				wait = resp.Interval
			}
			t.mu.Lock()
			t.addCandidatesLocked(resp.Peers)
			needy := t.store.VerifiedCount() < t.info.NumPieces()
			few := needy && len(t.peers) < 5
			starving := needy && len(t.peers) == 0 && len(resp.Peers) <= 1 // the one may be us
			t.mu.Unlock()
			t.log.Debug("announced", "tracker", url, "peers", len(resp.Peers), "interval", resp.Interval)
			if few && resp.MinInterval > 0 && resp.MinInterval < wait {
				wait = resp.MinInterval // short of peers: ask again as soon as allowed
			}
			if starving {
				wait = min(wait, starvingInterval) // nobody at all yet: seeders may be starting
			}
			event = tracker.EventNone
		}
		timer := time.NewTimer(wait)
		select {
		case <-t.ctx.Done():
			timer.Stop()
			if started {
				t.announceStopped(tiers)
			}
			return
		case <-t.announceCh:
			if !sentCompleted && t.Seeding() {
				event = tracker.EventCompleted
			}
		case <-timer.C:
		}
		timer.Stop()
		if event == tracker.EventNone && !started {
			event = tracker.EventStarted
		}
	}
}

func (t *Torrent) announceRequest(event tracker.Event) tracker.AnnounceRequest {
	t.mu.Lock()
	defer t.mu.Unlock()
	left := t.info.Length - t.store.VerifiedBytes()
	return tracker.AnnounceRequest{
		InfoHash:   t.hash,
		PeerID:     t.c.peerID,
		Port:       t.c.Port(),
		Uploaded:   t.stats.Uploaded,
		Downloaded: t.stats.Downloaded,
		Left:       left,
		Event:      event,
		NumWant:    t.c.cfg.MaxPeers,
		Key:        t.c.announceKey,
	}
}

// announceStopped tells the tracker we are leaving, bounded in time.
func (t *Torrent) announceStopped(tiers *tracker.Tiers) {
	ctx, cancel := context.WithTimeout(context.Background(), stoppedTimeout)
	defer cancel()
	if _, _, err := tiers.Announce(ctx, t.c.tracker, t.announceRequest(tracker.EventStopped)); err != nil {
		t.log.Debug("announce stopped", "err", err)
	}
}
