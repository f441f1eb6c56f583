package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// The mount helper form. `mount -t fuse.gotfs SOURCE MOUNTPOINT -o OPTIONS` (and the matching
// /etc/fstab line) runs mount.fuse3, which runs `gotfs SOURCE MOUNTPOINT -o OPTIONS` (looked
// up in mount's own PATH: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) and
// waits for it. helperArgs turns that form into `gotfs mount --daemon ...`, so it returns
// once the mount is ready and its exit status says whether it worked.

// ignoredMountOptions are options mount(8), mount.fuse3 or systemd pass or keep for themselves;
// they mean nothing to gotfs (the mount is always read-only, nodev and nosuid).
var ignoredMountOptions = map[string]bool{
	"rw": true, "ro": true, "defaults": true, "dev": true, "nodev": true, "suid": true, "nosuid": true,
	"exec": true, "noexec": true, "auto": true, "noauto": true, "nofail": true, "_netdev": true,
	"user": true, "nouser": true, "users": true, "owner": true, "group": true,
	"async": true, "sync": true, "atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "lazytime": true, "nolazytime": true,
	"diratime": true, "nodiratime": true, "silent": true, "loud": true,
	"default_permissions": true, // set whenever others may read (allow_other)
}

// helperArgs returns args unchanged unless they are the mount helper form, which it turns into
// the equivalent `mount --daemon` command line: each -o option NAME[=VALUE] becomes the flag
// --NAME[=VALUE] of gotfs mount, with _ read as - (allow_other, uid=, gid=, umask=,
// cache_dir=, cache_size=, prefetch, peer=, max_download_rate=, log_file=, ...).
func helperArgs(root *cobra.Command, args []string) ([]string, error) {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		return args, nil
	}
	var mount *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == args[0] || c.HasAlias(args[0]) {
			return args, nil // an ordinary command line
		}
		if c.Name() == "mount" {
			mount = c
		}
	}
	if args[0] == "help" || args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd {
		return args, nil
	}
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o":
			if i+1 == len(args) {
				return nil, usageError{"mount helper: -o needs a value\nUsage: gotfs SOURCE MOUNTPOINT -o OPTION,..."}
			}
			i++
			opts = append(opts, strings.Split(args[i], ",")...)
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, strings.Split(a[2:], ",")...)
		case strings.HasPrefix(a, "-"):
			return args, nil // not the helper form: let cobra say what is wrong
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 || opts == nil {
		// Not the helper form (mount.fuse3 always passes -o): let cobra say what is unknown.
		return args, nil
	}
	out := []string{"mount", "--daemon"}
	for _, o := range opts {
		name, value, hasValue := strings.Cut(o, "=")
		if o == "" || ignoredMountOptions[name] || strings.HasPrefix(name, "x-") || name == "comment" {
			continue
		}
		flag := strings.ReplaceAll(name, "_", "-")
		if flag == "daemon" || mount.Flags().Lookup(flag) == nil {
			return nil, usageError{fmt.Sprintf("mount option %q: unknown (gotfs takes the flags of gotfs mount as options, _ for -: allow_other, uid=, gid=, umask=, cache_dir=, cache_size=, prefetch, ...)", name)}
		}
		if hasValue {
			out = append(out, "--"+flag+"="+value)
		} else {
			out = append(out, "--"+flag)
		}
	}
	return append(out, "--", pos[0], pos[1]), nil
}
