package utp

import (
	"testing"
	"time"
)

// TestClockDrift: with a constant 20 ms path each way and the peer's clock running 200 µs
// per second fast against ours, the delay the peer reports for our packets grows by 200 µs a
// second. Over ten minutes that is 120 ms: without correction LEDBAT would take it for a
// queue past its 100 ms target and shrink the window. The fall of the delay we measure for
// the peer's packets moves the base delay along, so the queueing delay stays near zero. With
// no drift, nothing moves.
func TestClockDrift(t *testing.T) {
	for _, drift := range []uint32{0, 200} {
		l := newLedbat(1400, 1<<20, 100*time.Millisecond)
		start := time.Unix(1000, 0)
		offset := uint32(3_000_000_000) // the clocks' difference at start, µs (wraps)
		var worst uint32
		for i := uint32(0); i <= 600; i++ {
			now := start.Add(time.Duration(i) * time.Second)
			l.onPeerDelaySample(20000-offset-drift*i, now) // our clock less the peer's stamp
			l.onDelaySample(20000+offset+drift*i, now)     // the peer's clock less our stamp
			worst = max(worst, l.ourDelay)
		}
		if worst > drift {
			t.Errorf("drift %d µs/s: queueing delay reached %d µs; want at most one step", drift, worst)
		}
	}
}

// TestNoClockDriftCorrectionForPathChange: a fall of the peer's base delay larger than
// maxDriftStep is a new path, not drift, and leaves our base alone.
func TestNoClockDriftCorrectionForPathChange(t *testing.T) {
	l := newLedbat(1400, 1<<20, 100*time.Millisecond)
	now := time.Unix(1000, 0)
	l.onPeerDelaySample(80000, now)
	l.onDelaySample(20000, now)
	l.onPeerDelaySample(20000, now) // 60 ms lower
	l.onDelaySample(30000, now)
	if l.ourDelay != 10000 {
		t.Fatalf("queueing delay %d µs, want 10000", l.ourDelay)
	}
}
