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
			a := listen(t, "127.0.0.1", Config{})
			b := listen(t, "127.0.0.2", Config{RecvBuffer: tc.recvBuf})
			_, cb := connect(t, a, b)
			if got := cb.ackEvery(); got != tc.threshold {
				t.Fatalf("ackEvery %d, want %d", got, tc.threshold)
			}
			// The packets are handed to the connection as the read loop would, under its
			// lock, so that neither its timer nor a real ACK runs in between.
			cb.mu.Lock()
			defer cb.mu.Unlock()
			now := time.Now()
			payload := make([]byte, 1000)
			cb.ackPending, cb.ackBytes, cb.ackNow = 0, 0, false
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
	a := listen(t, "127.0.0.1", Config{})
	b := listen(t, "127.0.0.2", Config{})
	_, cb := connect(t, a, b)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	now := time.Now()
	cb.ackPending, cb.ackBytes, cb.ackNow = 0, 0, false
	for i := 1; i <= ackEveryPackets; i++ {
		cb.receiveDataLocked(cb.ack+1, []byte{byte(i)}, now)
		if due := i == ackEveryPackets; cb.ackNow != due {
			t.Fatalf("after %d one-byte packets: ACK due %v, want %v", i, cb.ackNow, due)
		}
	}
}
