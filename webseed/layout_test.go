package webseed

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFileURL(t *testing.T) {
	multi := padTorrent(t).layout()
	single := singleTorrent(t).layout()
	for _, tc := range []struct {
		l          *Layout
		base       string
		file       int
		want       string
		why        string
		singleFile bool
	}{
		{multi, "http://m/pub/", 2, "http://m/pub/multi%20dir/sub/b%20%C3%BC%23%3F.bin", "multi-file, slash", false},
		{multi, "http://m/pub", 4, "http://m/pub/multi%20dir/c%2520+%3B.bin", "multi-file, no slash: one is added", false},
		{single, "http://m/x/other.iso", 0, "http://m/x/other.iso", "single-file, no slash: as is", true},
		{single, "http://m/x/", 0, "http://m/x/f.bin", "single-file, slash: the name is added", true},
	} {
		if got := tc.l.fileURL(tc.base, tc.file); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.why, got, tc.want)
		}
	}
}

func TestSpans(t *testing.T) {
	l := padTorrent(t).layout()
	// Files: a 0+10000, pad 10000+6384, b 16384+40000, empty 56384+0, c 56384+5000,
	// pad 61384+7, d 61391+30000.
	got := l.spans(49152, 16384, nil) // piece 3
	want := []span{
		{file: 2, fileOff: 32768, bufOff: 0, n: 7232},
		{file: 4, fileOff: 0, bufOff: 7232, n: 5000},
		{file: 5, fileOff: 0, bufOff: 12232, n: 7},
		{file: 6, fileOff: 0, bufOff: 12239, n: 4145},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("piece 3 spans %+v, want %+v", got, want)
	}
	if got := l.spans(0, 1, nil); !reflect.DeepEqual(got, []span{{file: 0, n: 1}}) {
		t.Errorf("first byte: %+v", got)
	}
}

func TestBackoff(t *testing.T) {
	base, limit := time.Second, 10*time.Second
	for failures, want := range []time.Duration{1, 1, 2, 4, 8, 10, 10} {
		if got := backoff(failures, base, limit); got != want*time.Second {
			t.Errorf("backoff(%d) = %v, want %v", failures, got, want*time.Second)
		}
	}
	if got := backoff(1<<30, base, limit); got != limit {
		t.Errorf("backoff after many failures = %v", got)
	}
}

// TestRateBusyTime: the rate counts busy time only, so idle time between fetches does not
// lower it, and overlapping fetches add up.
func TestRateBusyTime(t *testing.T) {
	var h health
	t0 := time.Unix(1000, 0)
	h.start(t0)
	h.finish(t0.Add(time.Second), 1000) // 1000 B/s
	if r := h.currentRate(); r != 1000 {
		t.Fatalf("rate %v, want 1000", r)
	}
	// An hour idle, then two overlapping fetches of 1000 bytes in one second: 2000 B/s.
	t1 := t0.Add(time.Hour)
	h.start(t1)
	h.start(t1)
	h.finish(t1.Add(time.Second), 1000)
	h.finish(t1.Add(time.Second), 1000)
	if r, want := h.currentRate(), 1000+rateWeight*(2000-1000); r != want {
		t.Fatalf("rate %v, want %v", r, want)
	}
}

// TestSources: url-list and httpseeds URLs become sources of the right protocol; other
// schemes and URLs without a host are refused with a one-line error; passwords are redacted.
func TestSources(t *testing.T) {
	c := newTestClient(t, testConfig(t))
	l := singleTorrent(t).layout()
	srcs, errs := c.Sources(l,
		[]string{"http://user:secret@m.example/pub/#frag", "ftp://m.example/pub/", "http://", "https://m2.example/f.bin"},
		[]string{"http://hs.example/seed.php?", "gopher://x/", ":bad"})
	var got []string
	for _, s := range srcs {
		got = append(got, s.Protocol().String()+" "+s.Name())
	}
	want := []string{"url-list http://user:xxxxx@m.example/pub/", "url-list https://m2.example/f.bin", "httpseeds http://hs.example/seed.php?"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sources %q, want %q", got, want)
	}
	if len(errs) != 4 {
		t.Errorf("errors %v, want 4", errs)
	}
	for _, err := range errs {
		if !strings.HasPrefix(err.Error(), "web seed") || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q", err)
		}
	}
	if hs := srcs[2]; !strings.HasPrefix(hs.seedPrefix, "http://hs.example/seed.php?info_hash=") || strings.Contains(hs.seedPrefix, "??") {
		t.Errorf("BEP 17 prefix %q", hs.seedPrefix)
	}
	if srcs[0].base != "http://user:secret@m.example/pub/" {
		t.Errorf("base %q: the fragment is kept or the password lost", srcs[0].base)
	}
}
