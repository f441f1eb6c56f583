package lsd

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
)

func hashOf(b byte) [20]byte {
	var h [20]byte
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func TestAnnounceRoundTrip(t *testing.T) {
	a := Announce{Port: 6881, InfoHashes: [][20]byte{hashOf(1), hashOf(2)}, Cookie: "c0ffee01"}
	b := a.Encode(Group4)
	if !bytes.HasPrefix(b, []byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: ")) ||
		!bytes.HasSuffix(b, []byte("cookie: c0ffee01\r\n\r\n\r\n")) {
		t.Fatalf("encoded %q", b)
	}
	got, err := ParseAnnounce(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Port != 6881 || len(got.InfoHashes) != 2 || got.InfoHashes[1] != hashOf(2) || got.Cookie != "c0ffee01" {
		t.Fatalf("parsed %+v", got)
	}
	// libtorrent's form: lower-case names, upper-case hex, no cookie.
	lt := "BT-SEARCH * HTTP/1.1\r\nhost: 239.192.152.143:6771\r\nport: 51413\r\ninfohash: " +
		strings.ToUpper(fmt.Sprintf("%x", hashOf(9))) + "\r\n\r\n\r\n"
	got, err = ParseAnnounce([]byte(lt))
	if err != nil || got.Port != 51413 || got.InfoHashes[0] != hashOf(9) || got.Cookie != "" {
		t.Fatalf("libtorrent form: %v %+v", err, got)
	}
}

func TestParseAnnounceRejects(t *testing.T) {
	ih := fmt.Sprintf("%x", hashOf(1))
	for name, msg := range map[string]string{
		"method":        "M-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + ih + "\r\n\r\n",
		"no port":       "BT-SEARCH * HTTP/1.1\r\nInfohash: " + ih + "\r\n\r\n",
		"port zero":     "BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: " + ih + "\r\n\r\n",
		"port too big":  "BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\nInfohash: " + ih + "\r\n\r\n",
		"port sign":     "BT-SEARCH * HTTP/1.1\r\nPort: +80\r\nInfohash: " + ih + "\r\n\r\n",
		"no hash":       "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n",
		"short hash":    "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: abcd\r\n\r\n",
		"not hex":       "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + strings.Repeat("g", 40) + "\r\n\r\n",
		"too many":      "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n" + strings.Repeat("Infohash: "+ih+"\r\n", MaxInfoHashes+1) + "\r\n",
		"too long":      "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + ih + "\r\nX: " + strings.Repeat("x", MaxMessage) + "\r\n\r\n",
		"garbage":       "\x00\x01\x02",
		"header no sep": "BT-SEARCH * HTTP/1.1\r\nPort 1\r\n\r\n",
	} {
		if a, err := ParseAnnounce([]byte(msg)); err == nil {
			t.Errorf("%s: accepted as %+v", name, a)
		}
	}
}

// newBareService is a Service with no sockets, for driving handle directly.
func newBareService(ours [][20]byte, onPeer func([20]byte, netip.AddrPort)) *Service {
	s := &Service{cfg: Config{Port: 1, OnPeer: onPeer}, cookie: "00000000", ours: map[[20]byte]bool{}, limiter: newLimiter()}
	s.log = slog.New(slog.DiscardHandler)
	for _, h := range ours {
		s.ours[h] = true
	}
	return s
}

func TestHandleFilters(t *testing.T) {
	var got []string
	s := newBareService([][20]byte{hashOf(1)}, func(ih [20]byte, p netip.AddrPort) {
		got = append(got, fmt.Sprintf("%x@%s", ih[:1], p))
	})
	now := time.Unix(1000, 0)
	from := netip.MustParseAddrPort("10.0.0.7:6771")
	msg := func(port uint16, cookie string, hs ...[20]byte) []byte {
		a := Announce{Port: port, InfoHashes: hs, Cookie: cookie}
		return a.Encode(Group4)
	}
	if !s.handle(msg(7000, "", hashOf(1), hashOf(2)), from, now) {
		t.Fatal("announce of our torrent refused")
	}
	if s.handle(msg(7000, "", hashOf(2)), from, now) {
		t.Error("announce of a torrent not ours accepted")
	}
	if s.handle(msg(7001, s.cookie, hashOf(1)), from, now) {
		t.Error("our own announce (our cookie) accepted")
	}
	if s.handle(msg(7000, "", hashOf(1)), from, now.Add(time.Second)) {
		t.Error("same peer reported twice within a minute")
	}
	if !s.handle(msg(7000, "", hashOf(1)), from, now.Add(reportDedupe)) {
		t.Error("same peer not reported again after reportDedupe")
	}
	if s.handle(msg(7000, "", hashOf(1)), netip.MustParseAddrPort("224.0.0.1:6771"), now) {
		t.Error("multicast source accepted")
	}
	want := []string{"01@10.0.0.7:7000", "01@10.0.0.7:7000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reported %v, want %v", got, want)
	}
}

// TestHandleFlood checks the receive limits: one source announcing many ports gets
// reportBurst reports and then one per reportRefill; all sources together get at most
// maxMessagesPerSecond datagrams parsed a second; the tables stay bounded.
func TestHandleFlood(t *testing.T) {
	reports := 0
	s := newBareService([][20]byte{hashOf(1)}, func([20]byte, netip.AddrPort) { reports++ })
	now := time.Unix(1000, 0)
	from := netip.MustParseAddrPort("10.0.0.7:6771")
	for i := range 10_000 {
		a := Announce{Port: uint16(1000 + i), InfoHashes: [][20]byte{hashOf(1)}}
		// 1,000 datagrams a second for ten seconds.
		s.handle(a.Encode(Group4), from, now.Add(time.Duration(i)*time.Millisecond))
	}
	if maxWant := reportBurst + int(10*time.Second/reportRefill) + 1; reports > maxWant || reports < reportBurst {
		t.Errorf("one source flooding: %d reports, want %d to %d", reports, reportBurst, maxWant)
	}
	// Many sources at once: bounded by the parse rate and by the tables.
	reports = 0
	later := now.Add(time.Hour)
	for i := range 5_000 {
		a := Announce{Port: 7000, InfoHashes: [][20]byte{hashOf(1)}}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 6771)
		s.handle(a.Encode(Group4), src, later)
	}
	if reports != maxMessagesPerSecond {
		t.Errorf("5,000 sources in one second: %d reports, want %d", reports, maxMessagesPerSecond)
	}
	if len(s.limiter.sources) > maxSources || len(s.limiter.recent) > maxRecent {
		t.Errorf("tables grew to %d sources, %d pairs", len(s.limiter.sources), len(s.limiter.recent))
	}
}

// lsdNetns makes a network namespace whose loopback carries multicast, so announces stay in it.
func lsdNetns(t *testing.T) *testenv.Netns {
	ns := testenv.NewNetns(t, "lsd")
	ns.IP(t, "link", "set", "lo", "multicast", "on")
	ns.IP(t, "route", "add", "239.0.0.0/8", "dev", "lo")
	ns.IP(t, "-6", "route", "add", "ff15::/16", "dev", "lo", "table", "local")
	return ns
}

type found struct {
	mu    sync.Mutex
	peers map[string]time.Time
	ch    chan struct{}
}

func newFound() *found { return &found{peers: map[string]time.Time{}, ch: make(chan struct{}, 100)} }

func (f *found) add(ih [20]byte, p netip.AddrPort) {
	f.mu.Lock()
	f.peers[fmt.Sprintf("%x %s", ih[:2], p)] = time.Now()
	f.mu.Unlock()
	select {
	case f.ch <- struct{}{}:
	default:
	}
}

func (f *found) has(k string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.peers[k]
	return ok
}

// TestTwoServicesFindEachOther runs two Services in one network namespace, from
// 127.0.0.2 and 127.0.0.3, started one after the other: the first must find the second at
// once (at the address its announces left from, with its announced port) for the torrent
// they share, and neither may find itself. (The second missed the first's only announce,
// sent before it joined the group, unless the scheduler let it join first; it hears the next one an Interval later. One direction is
// enough for BitTorrent: the first dials the second.)
func TestTwoServicesFindEachOther(t *testing.T) {
	ns := lsdNetns(t)
	shared, onlyA := hashOf(1), hashOf(50)
	fa, fb := newFound(), newFound()
	var a, b *Service
	var errA, errB error
	start := time.Now()
	ns.Do(t, func() {
		a, errA = New(Config{Port: 7001, LocalAddr: netip.MustParseAddr("127.0.0.2"), OnPeer: fa.add,
			Torrents: func() [][20]byte { return [][20]byte{shared, onlyA} }})
		b, errB = New(Config{Port: 7002, LocalAddr: netip.MustParseAddr("127.0.0.3"), OnPeer: fb.add,
			Torrents: func() [][20]byte { return [][20]byte{shared} }})
	})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	defer a.Close()
	defer b.Close()
	wantA := fmt.Sprintf("%x 127.0.0.3:7002", shared[:2])
	deadline := time.After(5 * time.Second)
	for !fa.has(wantA) {
		select {
		case <-fa.ch:
		case <-deadline:
			t.Fatalf("after 5 s: a found %v, b found %v", fa.peers, fb.peers)
		}
	}
	t.Logf("a found b %v after start (families: %d)", time.Since(start).Round(time.Millisecond), len(a.fams))
	time.Sleep(1500 * time.Millisecond) // a second round of ticks: nothing may be announced again
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fb.mu.Lock()
	defer fb.mu.Unlock()
	// b may have joined before a's first announce, and then found a too.
	wantB := fmt.Sprintf("%x 127.0.0.2:7001", shared[:2])
	if _, ok := fb.peers[wantB]; len(fa.peers) != 1 || len(fb.peers) > 1 || len(fb.peers) == 1 && !ok {
		t.Errorf("a found %v, b found %v; want only each other, for the shared torrent", fa.peers, fb.peers)
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Sent != int64(len(a.fams)) || sb.Sent != int64(len(b.fams)) {
		t.Errorf("sent %d and %d announces in 1.5 s, want one per family (rate limit)", sa.Sent, sb.Sent)
	}
}

// TestFloodFromTheNetwork sends a flood of announces at a Service from one socket in its
// namespace and checks that it reports the flooder no more than its burst allows and keeps
// working for a well-behaved peer afterwards.
func TestFloodFromTheNetwork(t *testing.T) {
	ns := lsdNetns(t)
	ours := hashOf(1)
	f := newFound()
	var s *Service
	var flood, good *net.UDPConn
	var err error
	ns.Do(t, func() {
		s, err = New(Config{Port: 7001, NoIPv6: true, LocalAddr: netip.MustParseAddr("127.0.0.2"), OnPeer: f.add,
			Torrents: func() [][20]byte { return [][20]byte{ours} }})
		if err != nil {
			return
		}
		if flood, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9)}); err != nil {
			return
		}
		good, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 10)})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer flood.Close()
	defer good.Close()
	group := &net.UDPAddr{IP: net.IPv4(239, 192, 152, 143), Port: 6771}
	big := append([]byte("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n"), bytes.Repeat([]byte("X-Pad: yyyyyyyyyy\r\n"), 100)...)
	for i := range 3000 {
		a := Announce{Port: uint16(2000 + i), InfoHashes: [][20]byte{ours}}
		msg := a.Encode(Group4)
		if i%3 == 0 {
			msg = big // over MaxMessage: dropped unread
		}
		if _, err := flood.WriteToUDP(msg, group); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	flooded := s.Stats().Reported
	if flooded > reportBurst+1 {
		t.Errorf("flooder reported %d times, want at most %d", flooded, reportBurst+1)
	}
	time.Sleep(time.Second) // a new one-second parse window
	a := Announce{Port: 7777, InfoHashes: [][20]byte{ours}}
	if _, err := good.WriteToUDP(a.Encode(Group4), group); err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(2 * time.Second):
		t.Fatalf("well-behaved peer not reported after the flood (stats %+v)", s.Stats())
	case <-f.ch:
		for !f.has(fmt.Sprintf("%x 127.0.0.10:7777", ours[:2])) {
			select {
			case <-f.ch:
			case <-time.After(2 * time.Second):
				t.Fatalf("well-behaved peer not reported after the flood (stats %+v)", s.Stats())
			}
		}
	}
	t.Logf("flood: %+v", s.Stats())
}

// FuzzParseAnnounce checks that any datagram parses or fails cleanly within the bounds, and
// that what parses encodes and parses again to the same announce.
func FuzzParseAnnounce(f *testing.F) {
	a := Announce{Port: 6881, InfoHashes: [][20]byte{hashOf(1), hashOf(2)}, Cookie: "abc"}
	f.Add(a.Encode(Group4))
	f.Add([]byte("BT-SEARCH * HTTP/1.1\r\nhost: [ff15::efc0:988f]:6771\r\nport: 1\r\ninfohash: 0123456789ABCDEF0123456789abcdef01234567\r\n\r\n\r\n"))
	f.Add([]byte("BT-SEARCH * HTTP/1.1\nPort: 65535\nInfohash: 0000000000000000000000000000000000000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnnounce(b)
		if err != nil {
			return
		}
		if a.Port == 0 || len(a.InfoHashes) == 0 || len(a.InfoHashes) > MaxInfoHashes {
			t.Fatalf("accepted %+v", a)
		}
		if strings.ContainsAny(a.Cookie, "\r\n") {
			return // cannot be encoded again; Parse never gives it, but keep the check honest
		}
		again, err := ParseAnnounce(a.Encode(Group4))
		if err != nil && len(a.Encode(Group4)) <= MaxMessage {
			t.Fatalf("re-encoded announce refused: %v", err)
		}
		if err == nil && (again.Port != a.Port || fmt.Sprint(again.InfoHashes) != fmt.Sprint(a.InfoHashes) || again.Cookie != a.Cookie) {
			t.Fatalf("round trip: %+v != %+v", again, a)
		}
	})
}
