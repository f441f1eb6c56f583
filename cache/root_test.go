package cache

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gotfs/gotfs/torrentfile"
)

func TestDefaultRoot(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		euid int
		want string
		err  error
	}{
		{"xdg", map[string]string{"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}, 1000, "/x/cache/gotfs", nil},
		{"relative xdg is ignored", map[string]string{"XDG_CACHE_HOME": "cache", "HOME": "/home/u"}, 1000, "/home/u/.cache/gotfs", nil},
		{"home", map[string]string{"HOME": "/home/u"}, 1000, "/home/u/.cache/gotfs", nil},
		{"root service", nil, 0, SystemRoot, nil},
		{"user service", nil, 1000, "", ErrNoDefaultRoot},
	}
	for _, tt := range tests {
		r, err := defaultRoot(func(k string) string { return tt.env[k] }, tt.euid)
		if !errors.Is(err, tt.err) || r.Dir != tt.want {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, r.Dir, err, tt.want, tt.err)
		}
	}
}

func TestRootRoundTrip(t *testing.T) {
	r := Root{Dir: filepath.Join(t.TempDir(), "gotfs")}
	if l, err := r.List(); err != nil || len(l) != 0 {
		t.Fatalf("List of missing root = %v, %v", l, err)
	}
	pieces := make([]byte, 20)
	infoBytes := []byte("d6:lengthi100e4:name3:foo12:piece lengthi16384e6:pieces20:" + string(pieces) + "e")
	h := torrentfile.Hash(sha1.Sum(infoBytes))
	torrent := []byte("d8:announce9:http://x/4:info" + string(infoBytes) + "e")

	if err := r.SaveMetainfo(torrentfile.Hash{9}, infoBytes, nil); err == nil {
		t.Fatal("SaveMetainfo accepted info bytes of another hash")
	}
	if err := r.SaveMetainfo(h, infoBytes, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := r.LoadMetainfo(h); err != nil || !bytes.Equal(b, infoBytes) {
		t.Fatalf("LoadMetainfo = %q, %v", b, err)
	}
	if err := r.SaveMetainfo(h, infoBytes, torrent); err != nil {
		t.Fatal(err)
	}
	if b, err := r.LoadMetainfo(h); err != nil || !bytes.Equal(b, torrent) {
		t.Fatalf("LoadMetainfo = %q, %v", b, err)
	}
	if _, err := r.LoadMetainfo(torrentfile.Hash{1}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadMetainfo of unknown hash: %v", err)
	}

	// A storage under the root with the one piece verified.
	info := &torrentfile.Info{Name: "foo", PieceLength: 16384, Length: 100,
		Files: []torrentfile.File{{Path: []string{"foo"}, Length: 100}}}
	data := bytes.Repeat([]byte{'z'}, 100)
	info.Pieces = []torrentfile.Hash{sha1.Sum(data)}
	s, err := Open(info, r.Options(h))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WritePiece(0, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A stray folder that is not a hash is not listed.
	os.MkdirAll(filepath.Join(r.Dir, "dht"), 0o755)

	l, err := r.List()
	if err != nil || len(l) != 1 {
		t.Fatalf("List = %+v, %v", l, err)
	}
	e := l[0]
	if e.InfoHash != h || e.Name != "foo" || e.TotalSize != 100 || e.Pieces != 1 ||
		e.VerifiedPieces != 1 || e.VerifiedBytes != 100 || e.DiskUsage <= 0 {
		t.Fatalf("entry = %+v", e)
	}

	if err := (Root{}).Remove(h); err == nil {
		t.Fatal("Remove with an empty Dir succeeded")
	}
	if err := (Root{Dir: "/"}).Remove(h); err == nil {
		t.Fatal("Remove under / succeeded")
	}
	if err := r.Remove(h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.TorrentDir(h)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("entry still there after Remove")
	}
	if err := r.Remove(h); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove: %v", err)
	}

	// An entry that is a symlink: only the link goes.
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o644)
	if err := os.Symlink(target, r.TorrentDir(h)); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
		t.Fatal("Remove followed a symlink")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rec := &record{InfoHash: torrentfile.Hash{1, 2}, Layout: torrentfile.Hash{3}, PieceLength: 1 << 18,
		TotalLength: 5<<18 - 3, NumPieces: 5, Files: []fileStamp{{Size: 7, MTime: 99}, {Size: -1}},
		Bitfield: []byte{0b10100000}}
	b := rec.marshal()
	got, err := unmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.InfoHash != rec.InfoHash || got.Layout != rec.Layout || got.NumPieces != 5 ||
		got.Files[0] != rec.Files[0] || got.Files[1] != rec.Files[1] || !bytes.Equal(got.Bitfield, rec.Bitfield) {
		t.Fatalf("round trip: %+v", got)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := unmarshalRecord(c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := unmarshalRecord(b[:len(b)-1]); err == nil {
		t.Fatal("truncated record accepted")
	}
}
