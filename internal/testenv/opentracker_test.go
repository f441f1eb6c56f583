package testenv

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

func TestStartOpentracker(t *testing.T) {
	h1 := [20]byte{1, 2, 3}
	h2 := [20]byte{4, 5, 6}
	o := StartOpentracker(t, h1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	announce := func(h [20]byte) []byte {
		t.Helper()
		u := fmt.Sprintf("%s?info_hash=%s&peer_id=-GTTEST-000000000000&port=4000&uploaded=0&downloaded=0&left=0&compact=1",
			o.HTTPAnnounceURL(), escapeAll(h[:]))
		body, err := httpGet(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	if body := announce(h1); !bytes.HasPrefix(body, []byte("d8:complete")) {
		t.Errorf("whitelisted hash refused: %q", body)
	}
	if body := announce(h2); !bytes.Contains(body, []byte("not authorized")) {
		t.Errorf("hash not yet on the whitelist accepted: %q", body)
	}
	o.Allow(t, h2)
	if body := announce(h2); !bytes.HasPrefix(body, []byte("d8:complete")) {
		t.Errorf("hash refused after Allow: %q", body)
	}
	// The readiness probe peer (port 1) was removed again.
	if body := announce(h1); bytes.Contains(body, []byte{127, 0, 0, 1, 0, 1}) {
		t.Errorf("probe peer left behind: %q", body)
	}
	if o.UDPAnnounceURL() == "" || !o.udpReady() {
		t.Error("UDP port not answering")
	}
}
