package p2p

import (
	"net"
	"testing"
)

// sizedConn is a memConn that prefers writes of size bytes.
type sizedConn struct {
	memConn
	size int
}

func (s *sizedConn) WriteSize() int { return s.size }

// TestWriteBufferFollowsConn: a connection's write buffer takes the size its transport
// prefers (uTP: whole packets of one offloaded send), also through the prefix wrapper of an
// incoming connection; sizes out of bounds, or none, give the default.
func TestWriteBufferFollowsConn(t *testing.T) {
	for _, tc := range []struct {
		name string
		nc   net.Conn
		want int
	}{
		{"no preference", &memConn{}, writeBufferSize},
		{"utp default", &sizedConn{size: 63000}, 63000},
		{"through prefixConn", &prefixConn{Conn: &sizedConn{size: 45000}, prefix: []byte("x")}, 45000},
		{"prefixConn, no preference", &prefixConn{Conn: &memConn{}}, writeBufferSize},
		{"too small", &sizedConn{size: minWriteBuffer - 1}, writeBufferSize},
		{"too large", &sizedConn{size: maxWriteBuffer + 1}, writeBufferSize},
		{"zero", &sizedConn{}, writeBufferSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newConn(tc.nc).bw.Size(); got != tc.want {
				t.Fatalf("write buffer %d, want %d", got, tc.want)
			}
		})
	}
}
