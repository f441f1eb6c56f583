package utp

import (
	"testing"
	"time"
)

// TestRoundTrip: bytes cross loopback UDP both ways, byte-identical, and EOF follows FIN.
func TestRoundTrip(t *testing.T) {
	a := listen(t, "127.0.0.1", Config{})
	b := listen(t, "127.0.0.2", Config{})
	ca, cb := connect(t, a, b)
	data := randomBytes(4<<20, 1)
	d := transfer(t, ca, cb, data, 20*time.Second)
	t.Logf("4 MiB in %v; sender stats %+v", d, ca.Stats())
}

// TestSparesLinger: a sender whose data is all acknowledged keeps its packets for the next
// Write (a seeder empties its queue between two requests), and returns them to the socket's
// pool once it has sent nothing for spareLinger.
func TestSparesLinger(t *testing.T) {
	a := listen(t, "127.0.0.1", Config{})
	b := listen(t, "127.0.0.2", Config{})
	ca, cb := connect(t, a, b)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := cb.Read(buf); err != nil {
				return
			}
		}
	}()
	if _, err := ca.Write(randomBytes(256<<10, 2)); err != nil {
		t.Fatal(err)
	}
	state := func() (spares, out int, lastSend time.Time) {
		ca.mu.Lock()
		defer ca.mu.Unlock()
		return len(ca.spare), len(ca.out) + ca.unsentBytes, ca.lastSend
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		spares, out, lastSend := state()
		if out == 0 {
			if time.Since(lastSend) < spareLinger/2 && spares == 0 {
				t.Fatal("the spare packets were dropped as soon as everything was acknowledged")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("256 KiB not acknowledged within 10 s (%d bytes outstanding)", out)
		}
		time.Sleep(time.Millisecond)
	}
	for {
		spares, _, lastSend := state()
		if spares == 0 {
			if idle := time.Since(lastSend); idle < spareLinger {
				t.Fatalf("spares returned after %v idle, before spareLinger (%v)", idle, spareLinger)
			}
			return
		}
		if time.Since(lastSend) > spareLinger+5*time.Second {
			t.Fatalf("%d spare packets still held %v after the last send", spares, time.Since(lastSend))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
