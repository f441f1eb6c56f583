package utp

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the user plus system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchmarkTransfer moves 256 MiB per iteration over a fresh connection pair from dial and
// reports the throughput and the CPU seconds (both ends, one process) per GiB.
func benchmarkTransfer(b *testing.B, dial func(b *testing.B) (net.Conn, net.Conn)) {
	const size = 256 << 20
	data := randomBytes(size, 9)
	b.SetBytes(size)
	b.ResetTimer()
	cpu0, start := cpuTime(b), time.Now()
	for i := 0; i < b.N; i++ {
		w, r := dial(b)
		transfer(b, w, r, data, 5*time.Minute)
		w.Close()
		r.Close()
	}
	cpu, wall := cpuTime(b)-cpu0, time.Since(start)
	gib := float64(b.N) * size / (1 << 30)
	b.ReportMetric(cpu.Seconds()/gib, "cpu-s/GiB")
	b.ReportMetric(gib*(1<<30)/wall.Seconds()/1e6, "MB/s")
}

// BenchmarkLoopback compares uTP (1400-byte payloads, as on the internet; 8 KiB payloads;
// 1400 bytes without GSO/GRO) with TCP over loopback.
func BenchmarkLoopback(b *testing.B) {
	b.Run("tcp", func(b *testing.B) {
		benchmarkTransfer(b, func(b *testing.B) (net.Conn, net.Conn) {
			ln, err := net.Listen("tcp4", "127.0.0.2:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			w, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			r, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			return w, r
		})
	})
	for _, bc := range []struct {
		name      string
		payload   int
		noOffload bool
	}{
		{"utp-1400", 1400, false},
		{"utp-8k", 8192, false},
		{"utp-1400-nooffload", 1400, true}, // one datagram per system call, as off Linux
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{MaxPayload: bc.payload, SendBuffer: 4 << 20, RecvBuffer: 4 << 20, noOffload: bc.noOffload}
			x := listen(b, "127.0.0.1", cfg)
			y := listen(b, "127.0.0.2", cfg)
			benchmarkTransfer(b, func(b *testing.B) (net.Conn, net.Conn) { return connect(b, x, y) })
		})
	}
}

// BenchmarkFirstWindow times the first 64 KiB over a fresh connection (the handshake is not
// timed). Its sender starts in slow start with a window of 2 packets, so the time is set by
// how soon each round is acknowledged: with quick ACKs at once, without them after the
// delayed-ACK timer.
func BenchmarkFirstWindow(b *testing.B) {
	x := listen(b, "127.0.0.1", Config{})
	y := listen(b, "127.0.0.2", Config{})
	data := randomBytes(64<<10, 3)
	got := make([]byte, len(data))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w, r := connect(b, x, y)
		b.StartTimer()
		errc := make(chan error, 1)
		go func() { _, err := w.Write(data); errc <- err }()
		if _, err := io.ReadFull(r, got); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !bytes.Equal(got, data) {
			b.Fatal("the bytes read differ from those written")
		}
		w.Close()
		r.Close()
		b.StartTimer()
	}
}
