package fusefs

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const table = `22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 22 0:27 / /mnt/a\040b rw,nosuid - tmpfs none rw,size=1024k
40 22 0:45 / /mnt/t rw,nosuid,nodev,relatime shared:7 master:2 - fuse.gotfs gotfs rw,user_id=0
41 40 0:46 / /mnt/t rw - tmpfs none rw
50 22 0:47 / /mnt/back\134slash rw - fuse.gotfs gotfs rw
garbage line
60 22 0:48 / /mnt/short rw -
`
	for _, tt := range []struct {
		dir, fstype, device string
	}{
		{"/", "ext4", "252:0"},
		{"/mnt/a b", "tmpfs", "0:27"},
		{"/mnt/t", "tmpfs", "0:46"}, // stacked: the last one is on top
		{`/mnt/back\slash`, "fuse.gotfs", "0:47"},
	} {
		m, err := parseMountinfo(strings.NewReader(table), tt.dir)
		if err != nil || m.fstype != tt.fstype || m.device != tt.device {
			t.Errorf("%s: %+v, %v; want %s on %s", tt.dir, m, err, tt.fstype, tt.device)
		}
	}
	for _, dir := range []string{"/mnt", "/mnt/a\\040b", "/mnt/short", "/mnt/a b/c"} {
		if _, err := parseMountinfo(strings.NewReader(table), dir); !errors.Is(err, ErrNotMounted) {
			t.Errorf("%s: %v, want ErrNotMounted", dir, err)
		}
	}
}
