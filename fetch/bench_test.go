package fetch

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testswarm"
)

// BenchmarkSwarmDownload downloads a 64 MiB torrent from two local seeders, with many small
// pieces (the picker's worst case) and with 1 MiB pieces.
func BenchmarkSwarmDownload(b *testing.B) {
	for _, pieceLen := range []int64{16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("piece=%dKiB", pieceLen>>10), func(b *testing.B) {
			src := b.TempDir()
			const size = 64 << 20
			mi := makeTorrent(b, src, "bench", []testswarm.File{{Path: []string{"f"}, Size: size}}, pieceLen, 41)
			var peers []netip.AddrPort
			for _, ip := range []string{"127.0.0.171", "127.0.0.172"} {
				peers = append(peers, startSeeder(b, ip, mi, src).c.Addr())
			}
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				l := startLeecher(b, "127.0.0.173", mi, b.TempDir(), filepath.Join(b.TempDir(), "rec"), peers, TorrentOptions{Background: true})
				waitComplete(b, l, 5*time.Minute)
				b.StopTimer()
				l.close()
				b.StartTimer()
			}
		})
	}
}
