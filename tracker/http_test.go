package tracker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotfs/gotfs/torrentfile"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func bstr(s string) string { return fmt.Sprintf("%d:%s", len(s), s) }

func TestParseHTTPAnnounce(t *testing.T) {
	compact := "\x0a\x00\x00\x01\x1a\xe1" + "\xc0\xa8\x01\x02\x00\x50"
	v6 := "\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x01" + "\x1a\xe1"
	tests := []struct {
		name    string
		body    string
		want    *AnnounceResponse
		tid     string
		wantErr string // substring; "" = no error
	}{
		{
			name: "compact",
			body: "d8:completei5e10:incompletei7e8:intervali1800e12:min intervali900e5:peers" + bstr(compact) + "e",
			want: &AnnounceResponse{Peers: []netip.AddrPort{ap("10.0.0.1:6881"), ap("192.168.1.2:80")},
				Interval: 1800 * time.Second, MinInterval: 900 * time.Second, Seeders: 5, Leechers: 7},
		},
		{
			name: "dictionary peers",
			body: "d8:intervali60e5:peersl" +
				"d2:ip8:10.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti6881ee" +
				"d2:ip11:2001:db8::14:porti51413ee" +
				"d2:ip11:example.org4:porti1ee" + // host names are skipped
				"d2:ip8:10.0.0.24:porti0ee" + // port 0 skipped
				"d2:ip8:10.0.0.34:port4:6881e" + // string port skipped
				"i42e" + // not a dict
				"d2:ip8:10.0.0.14:porti6881ee" + // duplicate
				"ee",
			want: &AnnounceResponse{Peers: []netip.AddrPort{ap("10.0.0.1:6881"), ap("[2001:db8::1]:51413")},
				Interval: time.Minute, Seeders: -1, Leechers: -1},
		},
		{
			name: "peers6 and duplicates and trailing partial",
			body: "d8:intervali60e5:peers" + bstr(compact+compact[:6]+"\x01\x02") + "6:peers6" + bstr(v6+v6) + "e",
			want: &AnnounceResponse{Peers: []netip.AddrPort{ap("10.0.0.1:6881"), ap("192.168.1.2:80"), ap("[2001:db8::1]:6881")},
				Interval: time.Minute, Seeders: -1, Leechers: -1},
		},
		{
			name: "no peers, warning, tracker id",
			body: "d8:intervali60e10:tracker id3:abc15:warning message9:slow downe",
			want: &AnnounceResponse{Interval: time.Minute, Seeders: -1, Leechers: -1, Warning: "slow down"},
			tid:  "abc",
		},
		{
			name: "unspecified and v4-mapped",
			body: "d5:peers" + bstr("\x00\x00\x00\x00\x1a\xe1") + "6:peers6" + bstr(strings.Repeat("\x00", 10)+"\xff\xff\x0a\x00\x00\x01\x1a\xe1") + "e",
			want: &AnnounceResponse{Peers: []netip.AddrPort{ap("10.0.0.1:6881")}, Seeders: -1, Leechers: -1},
		},
		{
			name: "hostile numbers are clamped",
			body: "d8:completei-5e10:incompletei99999999999e8:intervali9223372036854775807e12:min intervali-1ee",
			want: &AnnounceResponse{Interval: 7 * 24 * time.Hour, Seeders: -1, Leechers: 1<<31 - 1},
		},
		{name: "failure", body: "d14:failure reason12:unregisterede", wantErr: "tracker refused: unregistered"},
		{name: "failure with control chars", body: "d14:failure reason3:a\nbe", wantErr: "a?b"},
		{name: "garbage", body: "<html>nope</html>", wantErr: "malformed announce reply"},
		{name: "empty", body: "", wantErr: "malformed"},
		{name: "trailing data", body: "d8:intervali1eeXX", wantErr: "malformed"},
		{name: "not a dict", body: "li1ee", wantErr: "not a dictionary"},
		{name: "peers wrong type", body: "d5:peersi3ee", wantErr: "neither a string nor a list"},
		{name: "bad integer", body: "d8:intervali-0ee", wantErr: "malformed"},
		{name: "truncated", body: "d5:peers600:abc", wantErr: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, tid, err := parseHTTPAnnounce([]byte(tc.body), 100)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tid != tc.tid {
				t.Errorf("tracker id %q, want %q", tid, tc.tid)
			}
			if !slices.Equal(got.Peers, tc.want.Peers) {
				t.Errorf("peers %v, want %v", got.Peers, tc.want.Peers)
			}
			got.Peers, tc.want.Peers = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", *got, *tc.want)
			}
		})
	}
}

func TestParseHTTPAnnounceBoundsPeers(t *testing.T) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "%c%c%c%c%c%c", 10, 0, byte(i>>8), byte(i), 0x1a, 0xe1)
	}
	resp, _, err := parseHTTPAnnounce([]byte("d5:peers"+bstr(sb.String())+"e"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 10 {
		t.Fatalf("%d peers, want 10", len(resp.Peers))
	}
}

func TestParseHTTPScrape(t *testing.T) {
	h1 := strings.Repeat("A", 20)
	h2 := strings.Repeat("\x00", 20)
	body := "d5:filesd" + bstr(h1) + "d8:completei3e10:downloadedi10e10:incompletei4ee" +
		bstr(h2) + "d8:completei1ee" + "3:bad" + "d8:completei1eee" + "e"
	got, err := parseHTTPScrape([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := map[torrentfile.Hash]ScrapeResult{
		torrentfile.Hash([]byte(h1)): {Seeders: 3, Completed: 10, Leechers: 4},
		torrentfile.Hash([]byte(h2)): {Seeders: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%x: %+v, want %+v", k, got[k], v)
		}
	}
	for _, bad := range []string{"", "de", "d5:filesi1ee", "d14:failure reason2:noe", "d5:filesd3:abce"} {
		if _, err := parseHTTPScrape([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEscapeBinary(t *testing.T) {
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	got := escapeBinary(all)
	// Unescaping gives the bytes back, and only unreserved characters stay literal.
	back, err := url.QueryUnescape(got)
	if err != nil || back != string(all) {
		t.Fatalf("round trip failed: %v", err)
	}
	for i := 0; i < len(got); i++ {
		c := got[i]
		if c == '%' {
			i += 2
			continue
		}
		if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", rune(c)) {
			t.Errorf("byte %q left unescaped", c)
		}
	}
	if got := escapeBinary([]byte("a b+/%~\x00\xff")); got != "a%20b%2B%2F%25~%00%FF" {
		t.Errorf("got %q", got)
	}
}

func TestHTTPAnnounceURL(t *testing.T) {
	req := AnnounceRequest{
		InfoHash: torrentfile.Hash([]byte("\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a")),
		PeerID:   torrentfile.Hash([]byte("-GT0001-abc def~.&=%")),
		Port:     6881, Uploaded: 1, Downloaded: 2, Left: 3, Event: EventCompleted, NumWant: 80, Key: 0xbeef,
	}
	for _, tc := range []struct{ in, want string }{
		{"http://t.example/announce", "http://t.example/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&peer_id=-GT0001-abc%20def~.%26%3D%25&port=6881&uploaded=1&downloaded=2&left=3&compact=1&event=completed&numwant=80&key=0000beef&trackerid=x%2Fy"},
		{"https://t.example:8443/a/announce.php?passkey=s3cr3t#frag", "https://t.example:8443/a/announce.php?passkey=s3cr3t&info_hash="},
		{"http://t.example/announce?", "http://t.example/announce?info_hash="},
		{"http://t.example/announce?a=1&", "http://t.example/announce?a=1&info_hash="},
	} {
		u, err := parseTrackerURL(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got := httpAnnounceURL(u, req, "x/y")
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s...", tc.in, got, tc.want)
		}
		if strings.Contains(got, "#") {
			t.Errorf("%s: fragment kept: %s", tc.in, got)
		}
	}
	// Defaults: no event, numwant, key or trackerid parameters.
	u, _ := parseTrackerURL("http://t/announce")
	got := httpAnnounceURL(u, AnnounceRequest{}, "")
	for _, p := range []string{"event=", "numwant=", "key=", "trackerid="} {
		if strings.Contains(got, p) {
			t.Errorf("%s present in %s", p, got)
		}
	}
}

func TestHTTPScrapeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://example.com/announce", "http://example.com/scrape"},
		{"http://example.com/x/announce", "http://example.com/x/scrape"},
		{"http://example.com/announce.php", "http://example.com/scrape.php"},
		{"http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644"},
		{"http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"},
		{"http://example.com/a", ""},
		{"http://example.com/x%064announce", ""},
		{"http://example.com/announce/x", ""},
		{"http://example.com/", ""},
		{"http://example.com", ""},
	} {
		u, err := parseTrackerURL(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := httpScrapeURL(u)
		if tc.want == "" {
			if !errors.Is(err, ErrScrapeUnsupported) {
				t.Errorf("%s: %v, %v; want ErrScrapeUnsupported", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParseTrackerURL(t *testing.T) {
	for _, bad := range []string{"ftp://x/announce", "udp://host/announce", "udp://:80", "http:///announce", "::", "wss://x"} {
		if _, err := parseTrackerURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"udp://host:80", "udp://host:80/announce", "HTTP://x/announce", "https://x"} {
		if _, err := parseTrackerURL(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

// fakeHTTPTracker is an httptest server whose handler records query strings.
type fakeHTTPTracker struct {
	*httptest.Server
	mu      sync.Mutex
	queries []url.Values
	raw     []string
}

func newFakeHTTPTracker(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *fakeHTTPTracker {
	f := &fakeHTTPTracker{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.queries = append(f.queries, r.URL.Query())
		f.raw = append(f.raw, r.URL.RawQuery)
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeHTTPTracker) query(i int) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[i]
}

func testClient(t *testing.T, opts ClientOptions) *Client {
	c := NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHTTPAnnounceClient(t *testing.T) {
	ih := torrentfile.Hash([]byte("\x00\x01 &=?#%+/\xff\xfeABCDEFGHI"))
	f := newFakeHTTPTracker(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "d8:intervali30e10:tracker id4:t-id5:peers6:\x7f\x00\x00\x01\x1a\xe1e")
	})
	c := testClient(t, ClientOptions{UserAgent: "test-agent/1"})
	req := AnnounceRequest{InfoHash: ih, PeerID: ih, Port: 7, Left: 9, Event: EventStarted, NumWant: 5, Key: 0x1234abcd}
	u := f.URL + "/announce?passkey=abc"
	for i := range 2 {
		resp, err := c.Announce(context.Background(), u, req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.Peers, []netip.AddrPort{ap("127.0.0.1:6881")}) || resp.Interval != 30*time.Second {
			t.Errorf("announce %d: %+v", i, resp)
		}
	}
	q0, q1 := f.query(0), f.query(1)
	for k, want := range map[string]string{
		"info_hash": string(ih[:]), "peer_id": string(ih[:]), "port": "7", "left": "9", "uploaded": "0",
		"downloaded": "0", "compact": "1", "event": "started", "numwant": "5", "key": "1234abcd", "passkey": "abc",
	} {
		if got := q0.Get(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if q0.Has("trackerid") {
		t.Error("first announce sent a tracker id")
	}
	if got := q1.Get("trackerid"); got != "t-id" {
		t.Errorf("second announce trackerid=%q, want t-id", got)
	}
}

func TestHTTPErrors(t *testing.T) {
	big := strings.Repeat("x", 2000)
	mux := http.NewServeMux()
	mux.HandleFunc("/big/announce", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "d5:peers"+bstr(big)+"e")
	})
	mux.HandleFunc("/loop/announce", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop/announce", http.StatusFound)
	})
	mux.HandleFunc("/hop/announce", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok/announce?"+r.URL.RawQuery, http.StatusMovedPermanently)
	})
	mux.HandleFunc("/ok/announce", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "d8:intervali30e5:peers0:e")
	})
	mux.HandleFunc("/udp/announce", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "udp://127.0.0.1:1/announce", http.StatusFound)
	})
	mux.HandleFunc("/404/announce", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such thing", http.StatusNotFound)
	})
	mux.HandleFunc("/403/announce", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "d14:failure reason6:bannede")
	})
	mux.HandleFunc("/slow/announce", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := testClient(t, ClientOptions{MaxResponseSize: 1000, Timeout: 300 * time.Millisecond})
	req := AnnounceRequest{Port: 1}
	for _, tc := range []struct{ path, wantErr string }{
		{"/big/announce", "larger than 1000 bytes"},
		{"/loop/announce", "redirects"},
		{"/hop/announce", ""},
		{"/udp/announce", "unsupported"},
		{"/404/announce", "404"},
		{"/403/announce", "tracker refused: banned"},
		{"/slow/announce", "timeout"},
	} {
		start := time.Now()
		_, err := c.Announce(context.Background(), srv.URL+tc.path, req)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) && !(tc.wantErr == "timeout" && errors.Is(err, context.DeadlineExceeded)) {
			t.Errorf("%s: error %v, want one containing %q", tc.path, err, tc.wantErr)
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("%s took %v", tc.path, time.Since(start))
		}
	}
}

func TestHTTPScrapeClient(t *testing.T) {
	var h1, h2 torrentfile.Hash
	h1[0], h2[0] = 1, 2
	f := newFakeHTTPTracker(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/x/scrape.php" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "d5:filesd"+bstr(string(h1[:]))+"d8:completei2e10:downloadedi5e10:incompletei3eeee")
	})
	c := testClient(t, ClientOptions{})
	res, err := c.Scrape(context.Background(), f.URL+"/x/announce.php?k=v", []torrentfile.Hash{h1, h2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[h1] != (ScrapeResult{Seeders: 2, Completed: 5, Leechers: 3}) {
		t.Errorf("got %v", res)
	}
	q := f.query(0)
	if !slices.Equal(q["info_hash"], []string{string(h1[:]), string(h2[:])}) || q.Get("k") != "v" {
		t.Errorf("query %v", q)
	}
	if _, err := c.Scrape(context.Background(), f.URL+"/x/a", []torrentfile.Hash{h1}); !errors.Is(err, ErrScrapeUnsupported) {
		t.Errorf("scrape of non-announce URL: %v", err)
	}
}

func TestClosedClient(t *testing.T) {
	c := NewClient(ClientOptions{})
	c.Close()
	if _, err := c.Announce(context.Background(), "http://127.0.0.1:1/announce", AnnounceRequest{}); !errors.Is(err, ErrClosed) {
		t.Errorf("announce after close: %v", err)
	}
}
