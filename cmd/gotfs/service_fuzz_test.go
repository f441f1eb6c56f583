package main

import (
	"slices"
	"strings"
	"testing"
)

// FuzzHelperArgs: any command line either passes through unchanged, or becomes a mount
// --daemon command line ending in -- SOURCE MOUNTPOINT, or is a usage error; never a panic.
func FuzzHelperArgs(f *testing.F) {
	f.Add("/t/x.torrent\x00/mnt/t\x00-o\x00rw,allow_other,uid=1000,x-systemd.automount")
	f.Add("magnet:?xt=urn:btih:00\x00/mnt\x00-oprefetch,cache_size=1GiB")
	f.Add("a\x00b\x00-o")
	f.Add("mount\x00a\x00b")
	root := newRootCmd(&app{})
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		out, err := helperArgs(root, args)
		switch {
		case err != nil:
			if _, ok := err.(usageError); !ok {
				t.Fatalf("error %v is not a usage error", err)
			}
		case slices.Equal(out, args):
		case len(out) < 5 || out[0] != "mount" || out[1] != "--daemon" || out[len(out)-3] != "--":
			t.Fatalf("helperArgs(%q) = %q", args, out)
		}
	})
}

// FuzzControlRequest: any bytes on the control socket are a known request or an error.
func FuzzControlRequest(f *testing.F) {
	f.Add([]byte(`{"op":"status"}`))
	f.Add([]byte(`{"op":"add","source":"x.torrent","torrent":"ZDQ6aW5mb2kxZWU="}`))
	f.Add([]byte(`{"op":"set","max_download_rate":4194304}`))
	f.Add([]byte(`{"op":"set","max_upload_rate":-1}`))
	f.Add([]byte(`{"op":"remove","source":"Movie"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseControlRequest(b)
		if err != nil {
			return
		}
		switch req.Op {
		case "", opStatus, opAdd, opRemove, opSet:
		default:
			t.Fatalf("accepted op %q", req.Op)
		}
		if (req.MaxDownloadRate != nil && *req.MaxDownloadRate < 0) || (req.MaxUploadRate != nil && *req.MaxUploadRate < 0) {
			t.Fatal("accepted a negative rate")
		}
	})
}
