package netsim

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
)

// StaticTracker is an HTTP tracker (BEP 3, compact peers, BEP 23) that answers every announce
// with the same peers: the forwarders' addresses, so that every client reaches the seeders only
// through the simulated links. Scrapes are not supported.
type StaticTracker struct {
	body []byte
}

// NewStaticTracker answers every announce with peers (IPv4 only).
func NewStaticTracker(peers []netip.AddrPort) (*StaticTracker, error) {
	var compact []byte
	for _, p := range peers {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("static tracker: %s is not IPv4", p)
		}
		a := p.Addr().As4()
		compact = append(compact, a[:]...)
		compact = append(compact, byte(p.Port()>>8), byte(p.Port()))
	}
	var b bytes.Buffer
	b.WriteString("d8:completei" + strconv.Itoa(len(peers)) + "e10:incompletei0e8:intervali60e5:peers")
	b.WriteString(strconv.Itoa(len(compact)) + ":")
	b.Write(compact)
	b.WriteString("e")
	return &StaticTracker{body: b.Bytes()}, nil
}

// ServeHTTP answers /announce.
func (s *StaticTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/announce" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(s.body)
}
