package torrentfile

import (
	"bytes"
	"testing"
)

func TestFromInfoEncodeRoundTrip(t *testing.T) {
	orig, err := Load("testdata/libtorrent/test_torrents/base.torrent")
	if err != nil {
		t.Fatal(err)
	}
	trackers := [][]string{{"http://a.example/announce"}, {"udp://b.example:80", "udp://c.example:80"}}
	mi, err := FromInfo(orig.InfoBytes, trackers, []string{"http://seed.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if mi.InfoHash != orig.InfoHash {
		t.Fatalf("info hash %x, want %x", mi.InfoHash, orig.InfoHash)
	}
	mi.HTTPSeeds = []string{"http://hs.example/seed.php"}
	b, err := mi.Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseBytes(b)
	if err != nil {
		t.Fatalf("parse encoded torrent: %v", err)
	}
	if again.InfoHash != orig.InfoHash || !bytes.Equal(again.InfoBytes, orig.InfoBytes) {
		t.Errorf("encoded torrent changed the info dictionary")
	}
	if len(again.Trackers) != 2 || again.Trackers[1][1] != "udp://c.example:80" || len(again.WebSeeds) != 1 ||
		len(again.HTTPSeeds) != 1 || again.HTTPSeeds[0] != "http://hs.example/seed.php" {
		t.Errorf("trackers %v, web seeds %v, HTTP seeds %v", again.Trackers, again.WebSeeds, again.HTTPSeeds)
	}
	if _, err := FromInfo([]byte("d4:name1:xe"), nil, nil); err == nil {
		t.Errorf("an info dictionary without pieces was accepted")
	}
}
