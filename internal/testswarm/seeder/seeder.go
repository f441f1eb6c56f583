// Package seeder starts the in-process seeders that the tests of fusefs and cmd/gotfs share
// (fetch's own tests, which cannot import an engine user, start theirs with testswarm.OpenSeed).
package seeder

import (
	"testing"

	"github.com/gotfs/gotfs/fetch"
	"github.com/gotfs/gotfs/internal/testswarm"
	"github.com/gotfs/gotfs/torrentfile"
)

// Start seeds the files of mi under dir from addr ("ip:port", port 0 for any) until the test
// ends, and returns the seeding client.
func Start(t testing.TB, mi *torrentfile.Metainfo, dir, addr string) *fetch.Client {
	t.Helper()
	st := testswarm.OpenSeed(t, mi, dir)
	c, err := fetch.NewClient(fetch.Config{ListenAddr: addr, Logger: testswarm.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.AddTorrent(mi, fetch.TorrentOptions{Storage: st, NoTrackers: true}); err != nil {
		t.Fatal(err)
	}
	return c
}
