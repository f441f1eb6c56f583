package fetch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines are still running after them: every
// Client, Torrent, Reader and FetchMetadata must stop what it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
