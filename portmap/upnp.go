package portmap

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gotfs/gotfs/internal/httpu"
)

// UPnP IGD limits: how long discovery listens, the largest description or SOAP answer read,
// how deep and long an XML document may be, and the time one HTTP exchange may take.
const (
	ssdpAddr     = "239.255.255.250:1900"
	ssdpWait     = 2 * time.Second
	maxXML       = 64 << 10
	maxXMLDepth  = 32
	maxXMLTokens = 20_000
	httpTimeout  = 5 * time.Second
)

// The service types that map ports, best first.
var wanServices = []string{
	"urn:schemas-upnp-org:service:WANIPConnection:2",
	"urn:schemas-upnp-org:service:WANIPConnection:1",
	"urn:schemas-upnp-org:service:WANPPPConnection:1",
}

// SOAP error codes of the WANIPConnection service that change what we ask.
const (
	upnpConflict      = 718 // ConflictInMappingEntry: the external port is taken
	upnpOnlyPermanent = 725 // OnlyPermanentLeasesSupported
)

// SOAPError is a UPnP error answer to an action.
type SOAPError struct {
	Code        int
	Description string
}

func (e *SOAPError) Error() string { return fmt.Sprintf("upnp error %d (%s)", e.Code, e.Description) }

// ssdpSearch multicasts M-SEARCH for Internet gateway devices and returns the LOCATION of
// the first answer that comes from gw and points at gw itself. Answers from other hosts, and
// LOCATIONs on any other host (a URL anyone on the network could send us to), are ignored.
func ssdpSearch(ctx context.Context, gw, local netip.Addr) (*url.URL, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("ssdp: %w", err)
	}
	defer c.Close()
	dst, _ := net.ResolveUDPAddr("udp4", ssdpAddr)
	for _, st := range []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
		"urn:schemas-upnp-org:device:InternetGatewayDevice:2"} {
		req := "M-SEARCH * HTTP/1.1\r\nHOST: " + ssdpAddr + "\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: " + st + "\r\n\r\n"
		if _, err := c.WriteToUDP([]byte(req), dst); err != nil {
			return nil, fmt.Errorf("ssdp: %w", err)
		}
	}
	deadline := time.Now().Add(ssdpWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, httpu.MaxMessage+1)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("ssdp: no gateway device answered from %s", gw)
		}
		if from.Addr().Unmap() != gw {
			continue
		}
		if loc, err := parseSSDPResponse(buf[:n], gw); err == nil {
			return loc, nil
		}
	}
}

// parseSSDPResponse checks an answer to M-SEARCH and returns its LOCATION, which must be an
// http URL whose host is the replier's address, given as an IP.
func parseSSDPResponse(b []byte, replier netip.Addr) (*url.URL, error) {
	m, err := httpu.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("ssdp answer: %w", err)
	}
	f := strings.Fields(m.StartLine)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") || f[1] != "200" {
		return nil, fmt.Errorf("ssdp answer: status line %q", m.StartLine)
	}
	loc := m.Get("LOCATION")
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("ssdp answer: LOCATION: %w", err)
	}
	if err := checkOnHost(u, replier); err != nil {
		return nil, fmt.Errorf("ssdp answer: LOCATION %q: %w", loc, err)
	}
	return u, nil
}

// checkOnHost accepts only an http URL on host's own address (written as an IP, so no name is
// looked up) with no user info.
func checkOnHost(u *url.URL, host netip.Addr) error {
	if u.Scheme != "http" || u.User != nil || u.Opaque != "" {
		return errors.New("not a plain http URL")
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil || a.Unmap() != host {
		return fmt.Errorf("host %q is not the gateway %s", u.Hostname(), host)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
	}
	return nil
}

// xmlWalk calls visit for every element's text, with the path of element local names that
// leads to it, and end for every closing element. It bounds depth and token count.
func xmlWalk(b []byte, visit func(path []string, text string), end func(path []string)) error {
	if len(b) > maxXML {
		return fmt.Errorf("xml of %d bytes: over %d", len(b), maxXML)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var path []string
	var text strings.Builder
	for tokens := 0; ; tokens++ {
		if tokens > maxXMLTokens {
			return errors.New("xml: too many tokens")
		}
		tok, err := d.Token()
		if err == io.EOF {
			if len(path) > 0 {
				return errors.New("xml: unexpected end")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) == maxXMLDepth {
				return errors.New("xml: nested too deep")
			}
			path = append(path, t.Name.Local)
			text.Reset()
		case xml.CharData:
			if text.Len()+len(t) <= 1024 {
				text.Write(t)
			}
		case xml.EndElement:
			visit(path, strings.TrimSpace(text.String()))
			text.Reset()
			if end != nil {
				end(path)
			}
			path = path[:len(path)-1]
		}
	}
}

// wanService is a port-mapping service found in a device description.
type wanService struct {
	serviceType string
	control     *url.URL
}

// parseDescription finds the best port-mapping service in a device description fetched from
// loc, and resolves its control URL (against URLBase when the description has one), which
// must be on gw too.
func parseDescription(b []byte, loc *url.URL, gw netip.Addr) (wanService, error) {
	var base string
	var found []wanService
	var st, ctl string
	err := xmlWalk(b, func(path []string, text string) {
		switch name := path[len(path)-1]; {
		case name == "URLBase" && len(path) == 2:
			base = text
		case name == "serviceType" && len(path) > 1 && path[len(path)-2] == "service":
			st = text
		case name == "controlURL" && len(path) > 1 && path[len(path)-2] == "service":
			ctl = text
		}
	}, func(path []string) {
		if path[len(path)-1] != "service" {
			return
		}
		if st != "" && ctl != "" && len(found) < 64 {
			if u, err := url.Parse(ctl); err == nil {
				found = append(found, wanService{serviceType: st, control: u})
			}
		}
		st, ctl = "", ""
	})
	if err != nil {
		return wanService{}, fmt.Errorf("device description: %w", err)
	}
	ref := loc
	if base != "" {
		if ref, err = url.Parse(base); err != nil {
			return wanService{}, fmt.Errorf("device description: URLBase: %w", err)
		}
	}
	for _, want := range wanServices {
		for _, s := range found {
			if s.serviceType != want {
				continue
			}
			s.control = ref.ResolveReference(s.control)
			if err := checkOnHost(s.control, gw); err != nil {
				return wanService{}, fmt.Errorf("device description: control URL %q: %w", s.control, err)
			}
			return s, nil
		}
	}
	return wanService{}, errors.New("device description: no WANIPConnection or WANPPPConnection service")
}

// parseSOAPResponse returns the arguments of a SOAP answer to action, or the *SOAPError of
// a fault.
func parseSOAPResponse(b []byte, action string) (map[string]string, error) {
	args := map[string]string{}
	var fault *SOAPError
	inAnswer := false
	err := xmlWalk(b, func(path []string, text string) {
		n := len(path)
		switch {
		case n >= 3 && path[n-2] == action+"Response" && path[n-3] == "Body" && len(args) < 32:
			args[path[n-1]] = text
			inAnswer = true
		case n >= 2 && path[n-1] == action+"Response" && path[n-2] == "Body":
			inAnswer = true
		case n >= 2 && path[n-2] == "UPnPError":
			if fault == nil {
				fault = &SOAPError{}
			}
			if path[n-1] == "errorCode" {
				fault.Code, _ = strconv.Atoi(text)
			} else if path[n-1] == "errorDescription" {
				fault.Description = text
			}
		}
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("soap %s: %w", action, err)
	}
	if fault != nil {
		return nil, fault
	}
	if !inAnswer {
		return nil, fmt.Errorf("soap %s: no %sResponse in the answer", action, action)
	}
	return args, nil
}

// upnpBackend maps ports through a UPnP IGD's WANIPConnection or WANPPPConnection service.
type upnpBackend struct {
	gw, local netip.Addr
	desc      string
	http      *http.Client
	svc       *wanService // found by the first call
}

// newHTTPClient returns an HTTP client that only ever connects to gw: no proxy, no redirect,
// bounded headers and time.
func newHTTPClient(gw netip.Addr) *http.Client {
	dialer := &net.Dialer{Timeout: httpTimeout}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || ap.Addr().Unmap() != gw {
				return nil, fmt.Errorf("refusing to connect to %s: not the gateway", addr)
			}
			return dialer.DialContext(ctx, "tcp4", addr)
		},
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  httpTimeout,
	}
	return &http.Client{Transport: tr, Timeout: httpTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (u *upnpBackend) method() Method { return UPnP }

// readBody reads an answer's body, at most maxXML bytes.
func readBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxXML+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxXML {
		return nil, fmt.Errorf("answer over %d bytes", maxXML)
	}
	return b, nil
}

// service discovers the gateway's port-mapping service once.
func (u *upnpBackend) service(ctx context.Context) (*wanService, error) {
	if u.svc != nil {
		return u.svc, nil
	}
	loc, err := ssdpSearch(ctx, u.gw, u.local)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device description: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("device description %s: %s", loc, resp.Status)
	}
	b, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("device description %s: %w", loc, err)
	}
	svc, err := parseDescription(b, loc, u.gw)
	if err != nil {
		return nil, err
	}
	u.svc = &svc
	return u.svc, nil
}

// call runs one SOAP action with the given arguments (name, value pairs, in order).
func (u *upnpBackend) call(ctx context.Context, action string, args ...string) (map[string]string, error) {
	svc, err := u.service(ctx)
	if err != nil {
		return nil, err
	}
	var body strings.Builder
	body.WriteString(`<?xml version="1.0"?>` + "\r\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`)
	body.WriteString(`<u:` + action + ` xmlns:u="` + svc.serviceType + `">`)
	for i := 0; i+1 < len(args); i += 2 {
		body.WriteString("<" + args[i] + ">")
		xml.EscapeText(&body, []byte(args[i+1]))
		body.WriteString("</" + args[i] + ">")
	}
	body.WriteString(`</u:` + action + `></s:Body></s:Envelope>`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, svc.control.String(), strings.NewReader(body.String()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	req.Header.Set("SOAPAction", `"`+svc.serviceType+"#"+action+`"`)
	resp, err := u.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upnp %s: %w", action, err)
	}
	defer resp.Body.Close()
	b, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("upnp %s: %w", action, err)
	}
	out, err := parseSOAPResponse(b, action)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("upnp %s: %s", action, resp.Status)
	}
	return out, err
}

func (u *upnpBackend) externalAddr(ctx context.Context) (netip.Addr, error) {
	out, err := u.call(ctx, "GetExternalIPAddress")
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(out["NewExternalIPAddress"])
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("upnp GetExternalIPAddress: bad address %q", out["NewExternalIPAddress"])
	}
	return a, nil
}

func (u *upnpBackend) mapPort(ctx context.Context, m *Mapping, lifetime time.Duration) error {
	ext := m.External.Port()
	if ext == 0 {
		ext = m.Internal
	}
	lease := strconv.FormatUint(uint64(seconds(lifetime)), 10)
	var err error
	for try := 0; try < 4; try++ {
		_, err = u.call(ctx, "AddPortMapping", "NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(ext)),
			"NewProtocol", string(m.Protocol), "NewInternalPort", strconv.Itoa(int(m.Internal)),
			"NewInternalClient", u.local.String(), "NewEnabled", "1",
			"NewPortMappingDescription", u.desc, "NewLeaseDuration", lease)
		var se *SOAPError
		if !errors.As(err, &se) {
			break
		}
		if se.Code == upnpOnlyPermanent && lease != "0" {
			lease = "0" // removed at Close, or when the router restarts
			continue
		}
		if se.Code != upnpConflict {
			break
		}
		ext = uint16(1024 + rand.IntN(65536-1024)) // the port is taken: try another
	}
	if err != nil {
		return err
	}
	addr, err := u.externalAddr(ctx)
	if err != nil {
		return err
	}
	m.External = netip.AddrPortFrom(addr, ext)
	m.Lifetime = lifetime
	if lease == "0" {
		m.Lifetime = 0
	}
	return nil
}

func (u *upnpBackend) unmap(ctx context.Context, m *Mapping) error {
	_, err := u.call(ctx, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(m.External.Port())),
		"NewProtocol", string(m.Protocol))
	return err
}
