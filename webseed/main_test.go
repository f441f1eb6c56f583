package webseed

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines are still running after them: a closed
// Client leaves no connection goroutine behind, and no fetch outlives its context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
