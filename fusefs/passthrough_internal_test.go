package fusefs

import (
	"reflect"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
)

// TestHandleIsNoPassthroughFder: go-fuse must never see a handle it would register a backing
// for (see passthrough.go): its per-node count is decremented by every release.
func TestHandleIsNoPassthroughFder(t *testing.T) {
	if _, ok := any(&handle{}).(fs.FilePassthroughFder); ok {
		t.Fatal("handle implements fs.FilePassthroughFder: go-fuse would count backing references again")
	}
}

// TestRawFSForwards: every method of go-fuse's node filesystem is a method of rawFS, so no
// optional interface that go-fuse (now or after an upgrade) might look for on the filesystem
// is hidden by the wrapper.
func TestRawFSForwards(t *testing.T) {
	inner := reflect.TypeOf(fs.NewNodeFS(&rootNode{}, &fs.Options{ExternalNodeID: true}))
	outer := reflect.TypeOf(&rawFS{})
	for i := range inner.NumMethod() {
		if m := inner.Method(i); m.IsExported() {
			if _, ok := outer.MethodByName(m.Name); !ok {
				t.Errorf("go-fuse's filesystem has method %s, which rawFS does not forward", m.Name)
			}
		}
	}
}
