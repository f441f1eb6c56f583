package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FUSE passthrough without go-fuse's backing bookkeeping.
//
// go-fuse (v2.12.1, fs/bridge.go) registers a backing for a handle that implements
// fs.FilePassthroughFder and counts references per node (nodeEntry.backingIDRefcount), but
// rawBridge.Release drops one reference for every released handle of a node that has a
// backing, handles that never took one included, and does so after the handle's own Release
// returns. An ordinary handle released just after a passthrough open of its file therefore
// unregistered the backing under the passthrough handle; the next open registered a new one,
// which the kernel refuses while the first is in use on the inode (fs/fuse/iomode.c,
// fuse_inode_uncached_io_start: EBUSY), and open failed with EIO.
//
// So no handle implements FilePassthroughFder (go-fuse's backingID for every node stays 0
// and its releaseBackingIDRef returns at once), and the registration belongs to the file:
// fileNode.Open registers the cache file when it makes the first passthrough handle, under
// the same lock that counts the handles, and the Release of the last passthrough handle
// unregisters it. Only passthrough handles count; the backing lives exactly as long as one is
// open. What go-fuse's Open cannot carry to the kernel is the backing ID: fileNode.Open marks
// a passthrough open with FOPEN_PASSTHROUGH in its flags, and rawFS.Open adds the file's
// backing ID to the reply.

// rawFS is go-fuse's node filesystem with the backing ID filled into passthrough opens.
//
// Every other request goes to the embedded filesystem unchanged. fuse.Server uses its
// filesystem only through the fuse.RawFileSystem methods (fuse/server.go, opcode.go: no type
// assertions on it), all of which the embedding forwards; TestRawFSForwards checks that
// go-fuse's filesystem has no method the wrapper would hide.
type rawFS struct {
	fuse.RawFileSystem
	fs *FS
}

// Open completes a passthrough open with the backing its file registered. The backing is
// stable here: it is dropped only when the file's passthrough handles are all released, and
// this one cannot be released before the kernel has this reply.
func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := r.RawFileSystem.Open(cancel, in, out)
	if st != fuse.OK || out.OpenFlags&fuse.FOPEN_PASSTHROUGH == 0 {
		return st
	}
	var id int32
	if n := r.fs.file(in.NodeId); n != nil {
		id = n.backing()
	}
	if id == 0 {
		// Not reached: only a file in r.fs.files answers FOPEN_PASSTHROUGH, and only with a
		// registered backing. Never hand the kernel a passthrough open without one: undo the
		// open.
		r.fs.log.Error("passthrough open without a backing", "node", in.NodeId)
		r.RawFileSystem.Release(cancel, &fuse.ReleaseIn{InHeader: in.InHeader, Fh: out.Fh, Flags: in.Flags})
		*out = fuse.OpenOut{}
		return fuse.EIO
	}
	out.BackingID = id
	out.OpenFlags &^= fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}
