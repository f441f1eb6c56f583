package utp

import "time"

// The congestion controller: LEDBAT (BEP 29, RFC 6817) on one-way delay, with slow start,
// a halving on loss once per window, and one packet after a timeout. It weighs:
//   - the one-way delay of our packets, as the peer reports it in timestamp_difference,
//     less the base delay (the minimum seen, one minimum per minute over baseHistory minutes),
//     which moves with the drift between the two clocks (onPeerDelaySample);
//   - the target delay (Config.TargetDelay, 100 ms by default);
//   - the bytes each ACK newly acknowledges, and whether the window limited us lately;
//   - losses (fast retransmit, SACK) and retransmission timeouts.
// RTT and RTO follow RFC 6298 with BEP 29's 500 ms floor.

const (
	// maxCwndIncrease is the most the window grows in one RTT when the delay is zero
	// (libutp's MAX_CWND_INCREASE_BYTES_PER_RTT).
	maxCwndIncrease = 3000
	// baseHistory is how many one-minute minimums the base delay is taken over.
	baseHistory = 13
	// initialRTO is the retransmission timeout before any RTT sample (RFC 6298).
	initialRTO = time.Second
	// maxRTO caps the exponential back-off.
	maxRTO = 16 * time.Second
	// maxDriftStep is the most one fall of the peer's base delay moves ours (libutp's
	// 10 ms): more is a change of path, not clock drift.
	maxDriftStep = 10000
)

// delayHistory keeps the base delay: the lowest one-way delay sample of each of the last
// baseHistory minutes. Samples are 32-bit microsecond clock differences and wrap; they are
// compared by signed distance.
type delayHistory struct {
	mins     [baseHistory]uint32
	n        int // buckets in use
	cur      int // index of the current minute's bucket
	curStart time.Time
}

func wrapLess(a, b uint32) bool { return int32(a-b) < 0 }

// add records a sample and returns the delay above the base.
func (d *delayHistory) add(sample uint32, now time.Time) uint32 {
	switch {
	case d.n == 0:
		d.n, d.cur, d.curStart = 1, 0, now
		d.mins[0] = sample
	case now.Sub(d.curStart) >= time.Minute:
		d.cur = (d.cur + 1) % baseHistory
		if d.n < baseHistory {
			d.n++
		}
		d.mins[d.cur], d.curStart = sample, now
	case wrapLess(sample, d.mins[d.cur]):
		d.mins[d.cur] = sample
	}
	return sample - d.base()
}

// base is the lowest sample of the history (0 when it is empty).
func (d *delayHistory) base() uint32 {
	base := d.mins[d.cur]
	for i := 0; i < d.n; i++ {
		if wrapLess(d.mins[i], base) {
			base = d.mins[i]
		}
	}
	return base
}

// shift moves every minimum up by delta microseconds.
func (d *delayHistory) shift(delta uint32) {
	for i := 0; i < d.n; i++ {
		d.mins[i] += delta
	}
}

// rttEstimator is RFC 6298's smoothed RTT and variance.
type rttEstimator struct {
	srtt, rttvar time.Duration
	minRTO       time.Duration
	sampled      bool
}

func (r *rttEstimator) sample(rtt time.Duration) {
	if rtt < 0 {
		return
	}
	if !r.sampled {
		r.srtt, r.rttvar, r.sampled = rtt, rtt/2, true
		return
	}
	d := r.srtt - rtt
	if d < 0 {
		d = -d
	}
	r.rttvar = (3*r.rttvar + d) / 4
	r.srtt = (7*r.srtt + rtt) / 8
}

// rto is the retransmission timeout before back-off.
func (r *rttEstimator) rto() time.Duration {
	if !r.sampled {
		return max(initialRTO, r.minRTO)
	}
	return min(max(r.srtt+4*r.rttvar, r.minRTO), maxRTO)
}

// ledbat is the congestion window of one connection.
type ledbat struct {
	mss       int // payload bytes of a full packet
	cwnd      int // bytes
	ssthresh  int
	slowStart bool
	maxCwnd   int
	target    uint32       // microseconds
	cwndFull  bool         // the window, not the application, limited the last send
	base      delayHistory // of our packets' one-way delay, as the peer measures it
	peerBase  delayHistory // of the peer's packets' one-way delay, as we measure it
	ourDelay  uint32       // latest delay above base, µs
	haveDelay bool
}

func newLedbat(mss, maxCwnd int, target time.Duration) ledbat {
	return ledbat{
		mss: mss, cwnd: 2 * mss, ssthresh: maxCwnd, slowStart: true, maxCwnd: maxCwnd,
		target: uint32(target.Microseconds()),
	}
}

func (l *ledbat) minCwnd() int { return 2 * l.mss }

// onDelaySample records a one-way delay sample from the peer's timestamp_difference.
func (l *ledbat) onDelaySample(tsDiff uint32, now time.Time) {
	if tsDiff == 0 { // the peer has no sample yet
		return
	}
	l.ourDelay = l.base.add(tsDiff, now)
	l.haveDelay = true
}

// onPeerDelaySample records the one-way delay of a packet from the peer as we measure it
// (our clock less its timestamp), to correct for clock drift as libutp does. Delays are
// clock differences: if the peer's clock runs fast against ours, the delay it reports for
// our packets creeps up with no queue behind it, and the delay we measure for its packets
// creeps down by as much. So when the base of the latter falls, ours moves up by as much.
func (l *ledbat) onPeerDelaySample(sample uint32, now time.Time) {
	had := l.peerBase.n > 0
	prev := l.peerBase.base()
	l.peerBase.add(sample, now)
	if d := prev - l.peerBase.base(); had && l.base.n > 0 && int32(d) > 0 && d <= maxDriftStep {
		l.base.shift(d)
	}
}

// onAck grows (or shrinks) the window for acked newly acknowledged bytes.
func (l *ledbat) onAck(acked int) {
	if acked <= 0 || !l.cwndFull {
		return
	}
	off := 1.0
	if l.haveDelay {
		off = (float64(l.target) - float64(l.ourDelay)) / float64(l.target)
		off = max(-1, min(1, off))
	}
	if l.slowStart {
		if off < 0 {
			l.slowStart, l.ssthresh = false, l.cwnd
		} else {
			l.cwnd += acked
			if l.cwnd >= l.ssthresh {
				l.slowStart = false
			}
		}
	}
	if !l.slowStart {
		l.cwnd += int(maxCwndIncrease * off * float64(acked) / float64(max(l.cwnd, l.mss)))
	}
	l.cwnd = max(l.minCwnd(), min(l.cwnd, l.maxCwnd))
}

// onLoss halves the window (the caller makes sure it happens once per window).
func (l *ledbat) onLoss() {
	l.cwnd = max(l.minCwnd(), l.cwnd/2)
	l.ssthresh, l.slowStart = l.cwnd, false
}

// onTimeout restarts from one packet, in slow start up to half the old window.
func (l *ledbat) onTimeout() {
	l.ssthresh = max(l.minCwnd(), l.cwnd/2)
	l.cwnd, l.slowStart = l.mss, true
}
