package testenv

import (
	"syscall"
	"testing"
)

// SmallTmpfs mounts a tmpfs of size (mount's size=, e.g. "2m") on a temporary folder for the
// test, to fill it up, and unmounts it when the test ends. It needs root: in CI a failure to
// mount fails the test, elsewhere the test is skipped.
func SmallTmpfs(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t, "mounting a small tmpfs")
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		if InCI() {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("skipping: reason: cannot mount a tmpfs (%v), e.g. in a container without CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt
}
