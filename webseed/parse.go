package webseed

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxHeaderValue bounds the header values parsed here; longer ones are refused unread.
const maxHeaderValue = 128

// maxRetryBody bounds the body of a BEP 17 503 answer that is read.
const maxRetryBody = 64

// contentRange is a parsed "bytes first-last/total" Content-Range; total is -1 for "*".
type contentRange struct {
	first, last, total int64
}

// parseContentRange parses a Content-Range header of a 206 answer (RFC 9110 §14.4):
// "bytes first-last/total" or "bytes first-last/*". The unsatisfied form "bytes */total"
// and anything malformed, overflowing or inconsistent (last < first, last >= total) is an
// error.
func parseContentRange(v string) (contentRange, error) {
	bad := func(why string) (contentRange, error) {
		return contentRange{}, errors.New("bad Content-Range: " + why)
	}
	if len(v) > maxHeaderValue {
		return bad("too long")
	}
	unit, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad("not a byte range")
	}
	rng, total, ok := strings.Cut(strings.TrimLeft(rest, " "), "/")
	if !ok {
		return bad("no total length")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("no range")
	}
	var cr contentRange
	var err error
	if cr.first, err = parseDecimal(a); err != nil {
		return bad("first byte: " + err.Error())
	}
	if cr.last, err = parseDecimal(b); err != nil {
		return bad("last byte: " + err.Error())
	}
	if cr.last < cr.first {
		return bad("last byte before first")
	}
	cr.total = -1
	if total != "*" {
		if cr.total, err = parseDecimal(total); err != nil {
			return bad("total length: " + err.Error())
		}
		if cr.last >= cr.total {
			return bad("range beyond total length")
		}
	}
	return cr, nil
}

// parseDecimal parses a non-negative decimal integer of plain ASCII digits that fits an
// int64.
func parseDecimal(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a number")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// parseRetryAfter parses a Retry-After header (RFC 9110 §10.2.3): delta-seconds or an
// HTTP-date, relative to now. The wait is capped at limit; ok is false for an empty or
// malformed value. A date in the past gives 0 and ok.
func parseRetryAfter(v string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > maxHeaderValue {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		return parseSeconds(v, limit)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	return min(max(d, 0), limit), true
}

// parseSeconds parses delta-seconds (plain ASCII digits) as a wait of at most limit; a
// number too large for an int64 is limit too.
func parseSeconds(s string, limit time.Duration) (time.Duration, bool) {
	n, err := parseDecimal(s)
	switch {
	case err != nil && strings.Trim(s, "0123456789") == "" && s != "":
		return limit, true // only digits, but more than an int64 holds
	case err != nil:
		return 0, false
	case n >= int64(limit/time.Second):
		return limit, true
	}
	return time.Duration(n) * time.Second, true
}

// parseRetryBody parses the body of a BEP 17 503 answer: an ASCII integer, the seconds to
// wait before retrying. Scripts in the wild wrap it in words ("retry after 30 seconds"), so
// the first number in a short printable body is taken. The wait is capped at limit.
func parseRetryBody(b []byte, limit time.Duration) (time.Duration, bool) {
	if len(b) > maxRetryBody {
		return 0, false
	}
	start := -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if start < 0 {
				start = i
			}
		case start >= 0:
			return parseSeconds(string(b[start:i]), limit)
		case c != '\t' && c != '\n' && c != '\r' && (c < ' ' || c > '~'):
			return 0, false
		}
	}
	if start < 0 {
		return 0, false
	}
	return parseSeconds(string(b[start:]), limit)
}
