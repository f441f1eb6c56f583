package webseed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Protocol tells the two kinds of web seed apart.
type Protocol int

const (
	// URLList is a BEP 19 web seed: a plain HTTP server holding the torrent's files.
	URLList Protocol = iota + 1
	// HTTPSeed is a BEP 17 HTTP seed: a script serving pieces by info hash.
	HTTPSeed
)

func (p Protocol) String() string {
	switch p {
	case URLList:
		return "url-list"
	case HTTPSeed:
		return "httpseeds"
	}
	return "protocol " + strconv.Itoa(int(p))
}

// ErrNoRanges: a BEP 19 server answered a range request with the whole file (HTTP 200). It
// wraps ErrWrongLength.
var ErrNoRanges = fmt.Errorf("server ignores byte ranges: %w", ErrWrongLength)

// errBadPiece is the last error of a source whose bytes failed a piece's hash.
var errBadPiece = errors.New("sent a piece that failed its hash")

// Source is one web seed of one torrent: a server, how to ask it (Protocol) and its health
// record. Its methods may be called from any goroutine; the health record is guarded by a
// leaf mutex held only for a few field updates, so Ready, Rate and Stats are cheap enough to
// call under the scheduler's lock.
type Source struct {
	client *Client
	layout *Layout
	proto  Protocol
	base   string // the URL, fragment removed
	name   string // the URL with any password redacted
	// seedPrefix is base plus "?info_hash=...&piece=" (BEP 17 only).
	seedPrefix string

	mu sync.Mutex
	h  health
}

// NewSource returns a source for the web seed rawURL of the torrent l describes. Only http
// and https URLs are accepted.
func (c *Client) NewSource(l *Layout, proto Protocol, rawURL string) (*Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("web seed: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("web seed %s: unsupported scheme %q (only http and https)", u.Redacted(), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("web seed %s: no host", u.Redacted())
	}
	if proto != URLList && proto != HTTPSeed {
		return nil, fmt.Errorf("web seed %s: unknown %v", u.Redacted(), proto)
	}
	u.Fragment, u.RawFragment = "", ""
	s := &Source{client: c, layout: l, proto: proto, base: u.String(), name: u.Redacted()}
	if proto == HTTPSeed {
		sep := "?"
		switch {
		case strings.HasSuffix(s.base, "?") || strings.HasSuffix(s.base, "&"):
			sep = ""
		case u.RawQuery != "":
			sep = "&"
		}
		s.seedPrefix = s.base + sep + "info_hash=" + escapeBytes(l.infoHash[:]) + "&piece="
	}
	return s, nil
}

// escapeBytes percent-escapes every byte but the unreserved ones (RFC 3986 §2.3), as
// trackers and HTTP seeds expect an info hash.
func escapeBytes(b []byte) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// Name returns the source's URL (any password redacted), for logs and status.
func (s *Source) Name() string { return s.name }

// Protocol returns how the source is asked.
func (s *Source) Protocol() Protocol { return s.proto }

// Ready reports whether Fetch would send a request at now: the source is not dropped, not
// backing off, and has fewer than Config.MaxInflight fetches in flight.
func (s *Source) Ready(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h.ready(now, s.client.cfg.MaxInflight)
}

// Rate returns the measured download rate in bytes per second of busy time (time with a
// fetch in flight), smoothed; 0 until something was received.
func (s *Source) Rate() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h.currentRate()
}

// ReportBadPiece records that a piece with bytes from this source failed its hash. The source
// backs off; after Config.MaxBadPieces such pieces it is dropped for good (it returns true
// then), and Fetch fails with ErrDropped.
func (s *Source) ReportBadPiece() (dropped bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := &s.client.cfg
	s.h.badPieces++
	s.h.failed(now, errBadPiece, cfg.BackoffBase, cfg.BackoffMax)
	if s.h.badPieces >= cfg.MaxBadPieces && !s.h.dropped {
		s.h.dropped = true
		cfg.Logger.Warn("web seed dropped", "url", s.name, "bad_pieces", s.h.badPieces)
	}
	return s.h.dropped
}

// Stats is a snapshot of a source's health record.
type Stats struct {
	Name     string
	Protocol Protocol
	// Rate is Source.Rate: bytes per busy second, smoothed.
	Rate float64
	// Latency is the smoothed time from sending a request to its response headers.
	Latency time.Duration
	// Downloaded counts the bytes of successful fetches.
	Downloaded int64
	Inflight   int
	// Errors counts failed fetches; Failures the consecutive ones that set the back-off.
	Errors, Failures int
	BadPieces        int
	Dropped          bool
	// RetryAt is when the back-off or the server's Retry-After ends.
	RetryAt   time.Time
	LastError string
}

// Stats returns a snapshot of the source's health record.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Name: s.name, Protocol: s.proto, Rate: s.h.currentRate(), Latency: s.h.latency,
		Downloaded: s.h.downloaded, Inflight: s.h.inflight, Errors: s.h.errors, Failures: s.h.failures,
		BadPieces: s.h.badPieces, Dropped: s.h.dropped, RetryAt: s.h.retryAt,
	}
	if s.h.lastErr != nil {
		st.LastError = s.h.lastErr.Error()
	}
	return st
}

// Fetch reads len(buf) bytes of the torrent starting at byte begin of piece into buf. The
// range may run on into the following pieces. Pad files (BEP 47) in the range are never
// requested: their bytes are set to zero. The bytes are not verified: the caller hashes the
// piece and calls ReportBadPiece on a mismatch.
//
// Fetch sends no request and fails with ErrNotReady or ErrDropped unless Ready. A failure
// of the server (an HTTP error, a wrong length, a stall, a refused redirect) is recorded and
// backs the source off; a cancelled ctx is not held against it. On error the contents of buf
// are undefined.
func (s *Source) Fetch(ctx context.Context, piece int, begin int64, buf []byte) error {
	info := s.layout.info
	n := int64(len(buf))
	if piece < 0 || piece >= info.NumPieces() || begin < 0 || n == 0 || n > info.Length-info.PieceOffset(piece)-begin {
		return fmt.Errorf("webseed %s: piece %d bytes %d+%d: %w", s.name, piece, begin, n, ErrBadRange)
	}
	off := info.PieceOffset(piece) + begin
	cfg := &s.client.cfg
	s.mu.Lock()
	switch {
	case s.h.dropped:
		s.mu.Unlock()
		return fmt.Errorf("webseed %s: %w", s.name, ErrDropped)
	case !s.h.ready(time.Now(), cfg.MaxInflight):
		s.mu.Unlock()
		return fmt.Errorf("webseed %s: %w", s.name, ErrNotReady)
	}
	s.h.start(time.Now())
	s.mu.Unlock()

	var err error
	if s.proto == URLList {
		err = s.fetchFiles(ctx, off, buf)
	} else {
		err = s.fetchPieces(ctx, off, buf)
	}

	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.h.finish(now, n)
		s.h.succeeded(n)
		return nil
	}
	s.h.finish(now, 0)
	err = fmt.Errorf("webseed %s: piece %d: %w", s.name, piece, err)
	if ctx.Err() != nil && !errors.Is(err, ErrStalled) {
		return err // the caller gave up: not the server's fault
	}
	s.h.failed(now, err, cfg.BackoffBase, cfg.BackoffMax)
	cfg.Logger.Debug("web seed failed", "url", s.name, "err", err, "retry_at", s.h.retryAt)
	return err
}

// fetchFiles is Fetch for a BEP 19 server: one range request per file the range covers, one
// after the other on the same kept-alive connection.
func (s *Source) fetchFiles(ctx context.Context, off int64, buf []byte) error {
	var stack [4]span
	files := s.layout.info.Files
	for _, sp := range s.layout.spans(off, int64(len(buf)), stack[:0]) {
		f := &files[sp.file]
		dst := buf[sp.bufOff : sp.bufOff+sp.n]
		if f.Padding {
			clear(dst)
			continue
		}
		if err := s.get(ctx, s.layout.fileURL(s.base, sp.file), sp.fileOff, f.Length, dst); err != nil {
			return fmt.Errorf("file %s bytes %d-%d: %w", s.layout.paths[sp.file], sp.fileOff, sp.fileOff+sp.n-1, err)
		}
	}
	return nil
}

// fetchPieces is Fetch for a BEP 17 script: one request per piece the range covers, with a
// ranges parameter unless the whole piece is asked for.
func (s *Source) fetchPieces(ctx context.Context, off int64, buf []byte) error {
	info := s.layout.info
	var u []byte
	for done := int64(0); done < int64(len(buf)); {
		piece := int((off + done) / info.PieceLength)
		begin := off + done - info.PieceOffset(piece)
		take := min(int64(len(buf))-done, info.PieceSize(piece)-begin)
		u = append(u[:0], s.seedPrefix...)
		u = strconv.AppendInt(u, int64(piece), 10)
		if begin != 0 || take != info.PieceSize(piece) {
			u = append(u, "&ranges="...)
			u = strconv.AppendInt(u, begin, 10)
			u = append(u, '-')
			u = strconv.AppendInt(u, begin+take-1, 10)
		}
		if err := s.get(ctx, string(u), -1, -1, buf[done:done+take]); err != nil {
			return fmt.Errorf("piece %d bytes %d-%d: %w", piece, begin, begin+take-1, err)
		}
		done += take
	}
	return nil
}

// get sends one GET and reads its body into dst, which the answer must fill exactly. For a
// BEP 19 request first is the file offset asked for and fileLen the file's length, and the
// request carries a Range header; for a BEP 17 request both are -1.
func (s *Source) get(ctx context.Context, rawURL string, first, fileLen int64, dst []byte) error {
	c := s.client
	rctx, cancel, stall := c.requestContext(ctx)
	defer cancel(nil)
	defer stall.Stop()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if first >= 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(first+int64(len(dst))-1, 10))
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return requestError(rctx, err)
	}
	defer resp.Body.Close()
	latency := time.Since(sent)
	s.mu.Lock()
	s.h.observeLatency(latency)
	s.mu.Unlock()
	if first >= 0 {
		err = c.checkRangeAnswer(resp, first, fileLen, int64(len(dst)))
	} else {
		err = c.checkSeedAnswer(resp, int64(len(dst)))
	}
	if err != nil {
		return err
	}
	if err := readExact(resp.Body, dst, stall, c.cfg.StallTimeout); err != nil {
		return requestError(rctx, err)
	}
	return nil
}

// requestError reports a stall as ErrStalled rather than as the cancellation it caused.
func requestError(rctx context.Context, err error) error {
	if errors.Is(context.Cause(rctx), ErrStalled) {
		return ErrStalled
	}
	return err
}

// checkRangeAnswer checks a BEP 19 answer to "Range: bytes=first-(first+n-1)" of a file of
// fileLen bytes: a 206 with exactly that Content-Range, or a 200 when the range is the whole
// file, and a Content-Length of n when there is one.
func (c *Client) checkRangeAnswer(resp *http.Response, first, fileLen, n int64) error {
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrWrongLength, err)
		}
		if cr.first != first || cr.last != first+n-1 || (cr.total >= 0 && cr.total != fileLen) {
			return fmt.Errorf("asked bytes %d-%d/%d, got Content-Range %d-%d/%d: %w",
				first, first+n-1, fileLen, cr.first, cr.last, cr.total, ErrWrongLength)
		}
	case http.StatusOK:
		if first != 0 || n != fileLen {
			return ErrNoRanges
		}
	default:
		return c.statusError(resp)
	}
	return checkContentLength(resp, n)
}

// checkSeedAnswer checks a BEP 17 answer: 200 with n bytes, or 503 whose body is the
// seconds to wait.
func (c *Client) checkSeedAnswer(resp *http.Response, n int64) error {
	switch resp.StatusCode {
	case http.StatusOK:
		return checkContentLength(resp, n)
	case http.StatusServiceUnavailable:
		se := c.statusError(resp)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRetryBody+1))
		if d, ok := parseRetryBody(body, c.cfg.MaxRetryAfter); ok {
			se.RetryAfter = d
		}
		return se
	}
	return c.statusError(resp)
}

func checkContentLength(resp *http.Response, n int64) error {
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		return fmt.Errorf("Content-Length %d for %d bytes: %w", resp.ContentLength, n, ErrWrongLength)
	}
	return nil
}

func (c *Client) statusError(resp *http.Response) *StatusError {
	se := &StatusError{Code: resp.StatusCode}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), c.cfg.MaxRetryAfter); ok {
		se.RetryAfter = d
	}
	return se
}

// readExact fills dst from body and checks that body ends there, resetting the stall timer
// whenever bytes arrive. Fewer bytes, or more, is ErrWrongLength.
func readExact(body io.Reader, dst []byte, stall *time.Timer, stallTimeout time.Duration) error {
	got := 0
	for got < len(dst) {
		m, err := body.Read(dst[got:])
		if m > 0 {
			got += m
			stall.Reset(stallTimeout)
		}
		if err == io.EOF {
			if got < len(dst) {
				return fmt.Errorf("body ended after %d of %d bytes: %w", got, len(dst), ErrWrongLength)
			}
			return nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) { // the connection closed before Content-Length
			return fmt.Errorf("body cut after %d of %d bytes: %w", got, len(dst), ErrWrongLength)
		}
		if err != nil {
			return fmt.Errorf("read body after %d of %d bytes: %w", got, len(dst), err)
		}
	}
	var extra [1]byte
	if m, err := io.ReadFull(body, extra[:]); m > 0 {
		return fmt.Errorf("body longer than the %d bytes asked for: %w", len(dst), ErrWrongLength)
	} else if err != io.EOF {
		return fmt.Errorf("read body end: %w", err)
	}
	return nil
}
