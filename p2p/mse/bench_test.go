package mse

import "testing"

// BenchmarkRC4 measures the stream cipher alone on one core: what each byte of an encrypted
// connection costs each end, 16 KiB (one block) at a time. bench-mse prints it beside
// OpenSSL's RC4 on the same machine.
func BenchmarkRC4(b *testing.B) {
	var skey [20]byte
	var s [KeyLen]byte
	c := newCipher("keyA", s, skey)
	buf := make([]byte, 16<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		c.XORKeyStream(buf, buf)
	}
}
