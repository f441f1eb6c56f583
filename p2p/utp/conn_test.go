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
