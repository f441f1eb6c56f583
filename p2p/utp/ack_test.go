package utp

import (
	"testing"
	"time"
)

// TestDelayedAckThreshold: in-order data smaller than ackEvery waits for delayedAck (one ACK
// for several packets) instead of being acknowledged every second packet; once ackEvery
// bytes wait, the ACK is due at the end of the read batch. The threshold is an eighth of a
// small receive buffer.
func TestDelayedAckThreshold(t *testing.T) {
	for _, tc := range []struct {
		name      string
		recvBuf   int
		threshold int
	}{
		{"default buffer", 0, ackEveryBytes},
		{"small buffer", 64 << 10, 8 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb, now := lockedReceiver(t, Config{RecvBuffer: tc.recvBuf})
			if got := cb.ackEvery(); got != tc.threshold {
				t.Fatalf("ackEvery %d, want %d", got, tc.threshold)
			}
			payload := make([]byte, 1000)
			pastQuickAcks(cb, now)
			n := 0
			for ; (n+1)*len(payload) < tc.threshold && n+1 < ackEveryPackets; n++ {
				cb.receiveDataLocked(cb.ack+1, payload, now)
				if cb.ackNow {
					t.Fatalf("ACK due after %d in-order packets (%d bytes), want none below %d bytes",
						n+1, (n+1)*len(payload), tc.threshold)
				}
			}
			if n < 2 {
				t.Fatalf("only %d packets below the threshold", n)
			}
			if want := now.Add(delayedAck); !cb.ackAt.Equal(want) {
				t.Fatalf("delayed ACK at %v, want %v (delayedAck after the first)", cb.ackAt, want)
			}
			cb.receiveDataLocked(cb.ack+1, payload, now)
			if !cb.ackNow {
				t.Fatalf("no ACK due with %d bytes waiting (threshold %d)", cb.ackBytes, tc.threshold)
			}
			if cb.ackPending != n+1 {
				t.Fatalf("%d packets waiting, want %d", cb.ackPending, n+1)
			}
		})
	}
}

// TestDelayedAckPacketCap: small in-order packets make an ACK due after ackEveryPackets of
// them, however few bytes they hold.
func TestDelayedAckPacketCap(t *testing.T) {
	cb, now := lockedReceiver(t, Config{})
	pastQuickAcks(cb, now)
	for i := 1; i <= ackEveryPackets; i++ {
		cb.receiveDataLocked(cb.ack+1, []byte{byte(i)}, now)
		if due := i == ackEveryPackets; cb.ackNow != due {
			t.Fatalf("after %d one-byte packets: ACK due %v, want %v", i, cb.ackNow, due)
		}
	}
}

// lockedReceiver connects two sockets and returns the accepting end, locked until the test
// ends, with the time to stamp packets with. Packets are then handed to it as the read loop
// would, under its lock, so that neither its timer nor a real ACK runs in between.
func lockedReceiver(t *testing.T, cfg Config) (*Conn, time.Time) {
	t.Helper()
	a := listen(t, "127.0.0.1", Config{})
	b := listen(t, "127.0.0.2", cfg)
	_, cb := connect(t, a, b)
	cb.mu.Lock()
	t.Cleanup(cb.mu.Unlock) // before connect's Close, which takes the lock
	return cb, time.Now()
}

// pastQuickAcks puts c (locked) past its quick ACKs, with no ACK pending: its first
// quickAckBytes came just before now.
func pastQuickAcks(c *Conn, now time.Time) {
	c.inOrderBytes, c.lastInOrder = quickAckBytes, now
	c.ackedLocked()
}

// TestQuickAcks: the first quickAckBytes of a connection, and data after quickAckIdle
// without any, are acknowledged every second packet, since the sender is in slow start then
// (its window 2 packets at first): waiting delayedAck would stall each of its rounds.
func TestQuickAcks(t *testing.T) {
	cb, now := lockedReceiver(t, Config{})
	payload := make([]byte, 1000)
	twoPackets := func(when time.Time) bool {
		cb.ackedLocked()
		cb.receiveDataLocked(cb.ack+1, payload, when)
		cb.receiveDataLocked(cb.ack+1, payload, when)
		return cb.ackNow
	}
	if !twoPackets(now) {
		t.Fatal("a new connection's first two packets: no ACK due")
	}
	cb.inOrderBytes = quickAckBytes
	if twoPackets(now) {
		t.Fatalf("past the first %d bytes, two packets made an ACK due", quickAckBytes)
	}
	if !twoPackets(now.Add(quickAckIdle)) {
		t.Fatalf("after %v without data, two packets: no ACK due", quickAckIdle)
	}
}
