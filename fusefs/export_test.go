package fusefs

// SetTestHookReleased makes every handle's Release call fn at its end, once fusefs has counted
// the release (go-fuse finishes its own part of the release after fn returns).
func (f *FS) SetTestHookReleased(fn func(passthrough bool)) { f.testHookReleased.Store(&fn) }
