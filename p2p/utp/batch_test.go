package utp

import (
	"testing"
)

// TestGSORun: an offloaded send takes a run of equal-size datagrams, ended by a shorter one
// or by the kernel's limits on segments and bytes.
func TestGSORun(t *testing.T) {
	sizes := func(n ...int) [][]byte {
		var d [][]byte
		for _, k := range n {
			d = append(d, make([]byte, k))
		}
		return d
	}
	for _, tc := range []struct {
		name   string
		dgrams [][]byte
		want   int
	}{
		{"one", sizes(1420), 1},
		{"shorter last", sizes(1420, 1420, 1420, 100, 1420), 4},
		{"longer second", sizes(100, 1420), 1},
		{"equal small", sizes(20, 20, 20), 3},
		{"bytes limit", sizes(repeat(60, 1420)...), maxGSOBytes / 1420},
		{"segment limit", sizes(repeat(100, 100)...), maxGSOSegments},
	} {
		if got := gsoRun(tc.dgrams); got != tc.want {
			t.Errorf("%s: %d datagrams, want %d", tc.name, got, tc.want)
		}
	}
}

func repeat(n, v int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestWriteSizeFillsOneSend: a write of WriteSize bytes is whole packets that one offloaded
// send carries, and one packet more would not fit it, for several payload sizes.
func TestWriteSizeFillsOneSend(t *testing.T) {
	for _, mss := range []int{1400, 1000, 576, 150, 65000} {
		c := &Conn{s: listen(t, "127.0.0.1", Config{MaxPayload: mss})} // WriteSize needs its socket alone
		ws := c.WriteSize()
		if ws%mss != 0 {
			t.Fatalf("payload %d: WriteSize %d is not whole packets", mss, ws)
		}
		n := ws / mss
		dgrams := make([][]byte, n+1)
		for i := range dgrams {
			dgrams[i] = make([]byte, headerLen+mss)
		}
		if got := gsoRun(dgrams); got != n {
			t.Fatalf("payload %d: one send carries %d of %d+1 packets, want the %d of WriteSize %d",
				mss, got, n, n, ws)
		}
	}
}
