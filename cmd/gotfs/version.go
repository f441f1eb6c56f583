package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionInfo is what the build recorded about itself (go build stamps the module version and
// the VCS state into the binary; `go install ...@vX` the module version).
type versionInfo struct {
	Module   string // module version: "v1.2.3", a pseudo-version, or "(devel)"
	Revision string // VCS revision, if built from a checkout
	Time     string // commit time of Revision
	Modified bool   // the checkout had uncommitted changes
	Go       string // Go toolchain version
}

// buildVersion reads the build information of the running binary.
func buildVersion() versionInfo {
	v := versionInfo{Module: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line `gotfs version` prints after "gotfs ".
func (v versionInfo) String() string {
	var extra []string
	if v.Revision != "" {
		rev := "revision " + v.Revision
		if v.Time != "" {
			rev += " of " + v.Time
		}
		if v.Modified {
			rev += ", modified"
		}
		extra = append(extra, rev)
	}
	extra = append(extra, fmt.Sprintf("%s %s/%s", v.Go, runtime.GOOS, runtime.GOARCH))
	return v.Module + " (" + strings.Join(extra, ", ") + ")"
}
