package tracker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/gotfs/gotfs/torrentfile"
	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// httpScrapeBatch is how many info hashes go into one HTTP scrape request (each costs up
// to 71 bytes of URL).
const httpScrapeBatch = 50

// ErrScrapeUnsupported is returned for HTTP trackers whose announce URL does not allow
// deriving a scrape URL.
var ErrScrapeUnsupported = errors.New("tracker does not support scrape (announce URL's last path element does not start with \"announce\")")

// escapeBinary percent-escapes every byte that is not an RFC 3986 unreserved character, the
// way binary info hashes and peer ids must travel in a query string.
func escapeBinary(b []byte) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(3 * len(b))
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

// withQuery returns u as a string with extra appended to its query (keeping any query the
// URL already has, e.g. a passkey) and without a fragment.
func withQuery(u *url.URL, extra string) string {
	v := *u
	v.Fragment, v.RawFragment = "", ""
	v.ForceQuery = false
	switch {
	case v.RawQuery == "":
		v.RawQuery = extra
	case strings.HasSuffix(v.RawQuery, "&"):
		v.RawQuery += extra
	default:
		v.RawQuery += "&" + extra
	}
	return v.String()
}

// httpAnnounceURL builds the announce request URL (BEP 3, compact=1 per BEP 23).
func httpAnnounceURL(u *url.URL, req AnnounceRequest, trackerID string) string {
	var q strings.Builder
	q.WriteString("info_hash=")
	q.WriteString(escapeBinary(req.InfoHash[:]))
	q.WriteString("&peer_id=")
	q.WriteString(escapeBinary(req.PeerID[:]))
	fmt.Fprintf(&q, "&port=%d&uploaded=%d&downloaded=%d&left=%d&compact=1",
		req.Port, max(req.Uploaded, 0), max(req.Downloaded, 0), max(req.Left, 0))
	if ev := req.Event.String(); ev != "" {
		q.WriteString("&event=")
		q.WriteString(ev)
	}
	if req.NumWant > 0 {
		fmt.Fprintf(&q, "&numwant=%d", req.NumWant)
	}
	if req.Key != 0 {
		fmt.Fprintf(&q, "&key=%08x", req.Key)
	}
	if trackerID != "" {
		q.WriteString("&trackerid=")
		q.WriteString(escapeBinary([]byte(trackerID)))
	}
	return withQuery(u, q.String())
}

// httpScrapeURL derives the scrape URL from an announce URL: the last path element must
// start with "announce", which becomes "scrape" (BEP 48).
func httpScrapeURL(u *url.URL) (*url.URL, error) {
	i := strings.LastIndexByte(u.Path, '/')
	last := u.Path[i+1:]
	if !strings.HasPrefix(last, "announce") {
		return nil, ErrScrapeUnsupported
	}
	v := *u
	v.Path = u.Path[:i+1] + "scrape" + strings.TrimPrefix(last, "announce")
	v.RawPath = ""
	return &v, nil
}

// get performs a GET and returns the body, at most MaxResponseSize bytes.
func (c *Client) get(ctx context.Context, target string) ([]byte, int, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("build request: %w", err)
	}
	hreq.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := c.http.Do(hreq)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL carries our info hash and maybe a passkey; the caller names the tracker
		}
		return nil, 0, fmt.Errorf("HTTP request: %w", err)
	}
	defer resp.Body.Close()
	limit := c.opts.MaxResponseSize
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("read HTTP reply: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, resp.StatusCode, fmt.Errorf("HTTP reply larger than %d bytes", limit)
	}
	return body, resp.StatusCode, nil
}

// statusError explains a non-200 reply, preferring a bencoded failure reason in the body.
func statusError(status int, body []byte) error {
	if msg, ok := failureReason(body); ok {
		return &TrackerError{Message: msg}
	}
	snippet := body
	if len(snippet) > 120 {
		snippet = snippet[:120]
	}
	return fmt.Errorf("HTTP status %d %s: %q", status, http.StatusText(status), sanitizeMessage(snippet))
}

func failureReason(body []byte) (string, bool) {
	raw, ok, err := bencode.DictValue(body, "failure reason")
	if err != nil || !ok {
		return "", false
	}
	s, ok := bString(raw)
	if !ok {
		return "", false
	}
	return sanitizeMessage(s), true
}

func (c *Client) httpAnnounce(ctx context.Context, rawURL string, u *url.URL, req AnnounceRequest) (*AnnounceResponse, error) {
	c.mu.Lock()
	tid := c.trackerIDs[rawURL]
	c.mu.Unlock()
	body, status, err := c.get(ctx, httpAnnounceURL(u, req, tid))
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, statusError(status, body)
	}
	resp, newTID, err := parseHTTPAnnounce(body, c.opts.MaxPeers)
	if err != nil {
		return nil, err
	}
	if newTID != "" {
		c.mu.Lock()
		c.trackerIDs[rawURL] = newTID
		c.mu.Unlock()
	}
	return resp, nil
}

func (c *Client) httpScrape(ctx context.Context, u *url.URL, hashes []torrentfile.Hash) (map[torrentfile.Hash]ScrapeResult, error) {
	su, err := httpScrapeURL(u)
	if err != nil {
		return nil, err
	}
	res := make(map[torrentfile.Hash]ScrapeResult, len(hashes))
	for len(hashes) > 0 {
		batch := hashes[:min(len(hashes), httpScrapeBatch)]
		hashes = hashes[len(batch):]
		var q strings.Builder
		for i, h := range batch {
			if i > 0 {
				q.WriteByte('&')
			}
			q.WriteString("info_hash=")
			q.WriteString(escapeBinary(h[:]))
		}
		body, status, err := c.get(ctx, withQuery(su, q.String()))
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, statusError(status, body)
		}
		files, err := parseHTTPScrape(body)
		if err != nil {
			return nil, err
		}
		for _, h := range batch {
			if r, ok := files[h]; ok {
				res[h] = r
			}
		}
	}
	return res, nil
}

// bString returns the contents of a bencoded string value that already passed
// bencode.Check.
func bString(raw []byte) ([]byte, bool) {
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return nil, false
	}
	i := bytes.IndexByte(raw, ':')
	if i < 0 {
		return nil, false
	}
	return raw[i+1:], true
}

// bInt returns the value of a bencoded integer that already passed bencode.Check.
func bInt(raw []byte) (int64, bool) {
	if len(raw) < 3 || raw[0] != 'i' || raw[len(raw)-1] != 'e' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw[1:len(raw)-1]), 10, 64)
	return n, err == nil
}

// dictValue looks up key in a dictionary that already passed bencode.Check.
func dictValue(d []byte, key string) []byte {
	raw, ok, err := bencode.DictValue(d, key)
	if err != nil || !ok {
		return nil
	}
	return raw
}

// forEach calls fn with the raw bytes of each element of a list, or of each key and value
// of a dictionary (key first), that already passed bencode.Check, until fn returns false.
func forEach(raw []byte, fn func(elem []byte) bool) error {
	if len(raw) < 2 || (raw[0] != 'l' && raw[0] != 'd') {
		return errors.New("not a list or dictionary")
	}
	pos := 1
	for pos < len(raw) && raw[pos] != 'e' {
		end, err := bencode.Span(raw, pos)
		if err != nil {
			return err
		}
		if !fn(raw[pos:end]) {
			return nil
		}
		pos = end
	}
	return nil
}

// parseHTTPAnnounce parses a bencoded announce reply: compact (BEP 23) or dictionary peer
// lists, peers6 (BEP 7), failure reason (a *TrackerError), warning message, intervals,
// counts and tracker id. At most maxPeers peers are kept.
func parseHTTPAnnounce(body []byte, maxPeers int) (*AnnounceResponse, string, error) {
	if err := bencode.Check(body); err != nil {
		return nil, "", fmt.Errorf("malformed announce reply %q: %w", sanitizeMessage(body[:min(len(body), 60)]), err)
	}
	if body[0] != 'd' {
		return nil, "", errors.New("announce reply is not a dictionary")
	}
	if msg, ok := failureReason(body); ok {
		return nil, "", &TrackerError{Message: msg}
	}
	resp := &AnnounceResponse{Seeders: -1, Leechers: -1}
	if s, ok := bString(dictValue(body, "warning message")); ok {
		resp.Warning = sanitizeMessage(s)
	}
	if n, ok := bInt(dictValue(body, "interval")); ok {
		resp.Interval = secondsToDuration(n)
	}
	if n, ok := bInt(dictValue(body, "min interval")); ok {
		resp.MinInterval = secondsToDuration(n)
	}
	if n, ok := bInt(dictValue(body, "complete")); ok {
		resp.Seeders = clampCount(n)
	}
	if n, ok := bInt(dictValue(body, "incomplete")); ok {
		resp.Leechers = clampCount(n)
	}
	var trackerID string
	if s, ok := bString(dictValue(body, "tracker id")); ok && len(s) <= 256 {
		trackerID = string(s)
	}

	ps := newPeerSet(maxPeers)
	if raw := dictValue(body, "peers"); raw != nil {
		if s, ok := bString(raw); ok {
			ps.addCompact(s, 4)
		} else if raw[0] == 'l' {
			err := forEach(raw, func(e []byte) bool {
				if e[0] != 'd' {
					return true
				}
				ipRaw, _ := bString(dictValue(e, "ip"))
				port, ok := bInt(dictValue(e, "port"))
				if !ok || port <= 0 || port > 65535 {
					return true
				}
				addr, err := netip.ParseAddr(string(ipRaw))
				if err != nil || addr.Zone() != "" {
					return true // host names and junk: skip
				}
				return ps.add(netip.AddrPortFrom(addr, uint16(port)))
			})
			if err != nil {
				return nil, "", fmt.Errorf("announce reply peer list: %w", err)
			}
		} else {
			return nil, "", errors.New("announce reply \"peers\" is neither a string nor a list")
		}
	}
	if s, ok := bString(dictValue(body, "peers6")); ok {
		ps.addCompact(s, 16)
	}
	resp.Peers = ps.peers
	return resp, trackerID, nil
}

// parseHTTPScrape parses a bencoded scrape reply: {"files": {<20-byte hash>: {"complete",
// "downloaded", "incomplete"}}}. Keys that are not 20 bytes long are skipped.
func parseHTTPScrape(body []byte) (map[torrentfile.Hash]ScrapeResult, error) {
	if err := bencode.Check(body); err != nil {
		return nil, fmt.Errorf("malformed scrape reply %q: %w", sanitizeMessage(body[:min(len(body), 60)]), err)
	}
	if body[0] != 'd' {
		return nil, errors.New("scrape reply is not a dictionary")
	}
	if msg, ok := failureReason(body); ok {
		return nil, &TrackerError{Message: msg}
	}
	files := dictValue(body, "files")
	if files == nil || files[0] != 'd' {
		return nil, errors.New("scrape reply has no \"files\" dictionary")
	}
	res := make(map[torrentfile.Hash]ScrapeResult)
	var key []byte
	isKey := true
	err := forEach(files, func(e []byte) bool {
		if isKey {
			key, _ = bString(e)
			isKey = false
			return true
		}
		isKey = true
		if len(key) != torrentfile.HashSize || e[0] != 'd' {
			return true
		}
		var r ScrapeResult
		n, _ := bInt(dictValue(e, "complete"))
		r.Seeders = clampCount(n)
		n, _ = bInt(dictValue(e, "downloaded"))
		r.Completed = clampCount(n)
		n, _ = bInt(dictValue(e, "incomplete"))
		r.Leechers = clampCount(n)
		res[torrentfile.Hash(key)] = r
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("scrape reply files: %w", err)
	}
	return res, nil
}
