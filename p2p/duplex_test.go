package p2p

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestFullDuplex: each side reads on one goroutine while two others write and a third
// changes the piece count: the concurrency the engine uses, under -race.
func TestFullDuplex(t *testing.T) {
	const n = 2000
	addr, ch := acceptOne(t, peerB, testOpts())
	a, _, err := Dial(context.Background(), addr, testHash, peerA, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	b := r.c
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, c := range []*Conn{a, b} {
		block := make([]byte, BlockSize)
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					m := Piece(uint32(i%9), 0, block)
					if w == 1 {
						m = Have(uint32(i % 10))
					}
					if err := c.WriteMessage(m); err != nil {
						errs <- err
						return
					}
					if i%64 == 0 {
						if err := c.Flush(); err != nil {
							errs <- err
							return
						}
					}
				}
				if err := c.Flush(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				c.SetNumPieces(10)
				c.SetPieceSize(testOpts().PieceSize)
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 2*n; i++ {
				if _, err := c.ReadMessage(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	a.Close()
	if _, err := b.ReadMessage(); err == nil || errors.Is(err, ErrProtocol) {
		t.Fatalf("after close: %v", err)
	}
	b.Close()
}
