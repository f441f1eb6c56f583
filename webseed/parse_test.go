package webseed

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want contentRange
		ok   bool
	}{
		{"bytes 0-499/1234", contentRange{0, 499, 1234}, true},
		{"bytes 100-100/*", contentRange{100, 100, -1}, true},
		{"BYTES  5-9/10", contentRange{5, 9, 10}, true},
		{" bytes 0-0/1 ", contentRange{0, 0, 1}, true},
		{"bytes 0-9223372036854775806/9223372036854775807", contentRange{0, 9223372036854775806, 9223372036854775807}, true},
		{"bytes */1234", contentRange{}, false},
		{"bytes 5-4/10", contentRange{}, false},
		{"bytes 0-10/10", contentRange{}, false},
		{"bytes -1-5/10", contentRange{}, false},
		{"bytes +1-5/10", contentRange{}, false},
		{"bytes 0-5", contentRange{}, false},
		{"bytes 0-9223372036854775808/*", contentRange{}, false},
		{"items 0-5/10", contentRange{}, false},
		{"bytes 0 -5/10", contentRange{}, false},
		{"", contentRange{}, false},
		{"bytes 0-5/" + strings.Repeat("9", 200), contentRange{}, false},
	} {
		got, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 0 ", 0, true},
		{"99999999999999999999999", time.Hour, true},
		{"7200", time.Hour, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"Wed, 01 Jan 2031 00:00:00 GMT", time.Hour, true},
		{"-5", 0, false},
		{"5s", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, now, time.Hour)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseRetryBody(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{"30\r\n", 30 * time.Second, true},
		{"retry after 12 seconds", 12 * time.Second, true},
		{"99999999999999999999999999", time.Hour, true},
		{"", 0, false},
		{"busy", 0, false},
		{"\x00\x0130", 0, false},
		{strings.Repeat(" ", 70) + "5", 0, false},
	} {
		got, ok := parseRetryBody([]byte(tc.in), time.Hour)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzContentRange: any header value gives a consistent range or an error, never a panic;
// a parsed range prints back to a value that parses the same.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-499/1234", "bytes 1-1/*", "bytes */10", "bytes 9-8/10", "bytes 0-9223372036854775807/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cr, err := parseContentRange(v)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if cr.first < 0 || cr.last < cr.first || (cr.total != -1 && cr.last >= cr.total) {
			t.Fatalf("%q: inconsistent %+v", v, cr)
		}
		total := "*"
		if cr.total >= 0 {
			total = fmt.Sprint(cr.total)
		}
		again, err := parseContentRange(fmt.Sprintf("bytes %d-%d/%s", cr.first, cr.last, total))
		if err != nil || again != cr {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", v, cr, again, err)
		}
	})
}

// FuzzRetryAfter: any Retry-After value gives a wait within [0, limit] or nothing.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now, time.Hour)
		if d < 0 || d > time.Hour || (!ok && d != 0) {
			t.Fatalf("%q: %v %v", v, d, ok)
		}
	})
}

// FuzzRetryBody: any BEP 17 503 body gives a wait within [0, limit] or nothing.
func FuzzRetryBody(f *testing.F) {
	for _, s := range []string{"30", "retry after 12 seconds\n", "<html>", "\xff\xfe", "0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok := parseRetryBody(b, time.Hour)
		if d < 0 || d > time.Hour || (!ok && d != 0) {
			t.Fatalf("%q: %v %v", b, d, ok)
		}
	})
}
