package portmap

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

var gw = netip.MustParseAddr("10.77.0.1")

const routeTable = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
	"eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
	"eth0\t00000000\t01004D0A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
	"eth0\t00004D0A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"

func TestParseRouteTable(t *testing.T) {
	got, err := parseRouteTable([]byte(routeTable))
	if err != nil || got != gw {
		t.Fatalf("got %v %v, want %v (lowest metric)", got, err, gw)
	}
	noDefault := "Iface\tDestination\tGateway\n" + strings.SplitAfter(routeTable, "\n")[3]
	if _, err := parseRouteTable([]byte(noDefault)); err == nil {
		t.Error("no default route: no error")
	}
}

func TestParseNATPMP(t *testing.T) {
	addr := []byte{0, 128, 0, 0, 0, 0, 0, 9, 11, 77, 0, 1}
	r, err := parseNATPMP(addr, natpmpOpAddress)
	if err != nil || r.external != netip.MustParseAddr("11.77.0.1") {
		t.Fatalf("address answer: %+v %v", r, err)
	}
	mp := []byte{0, 130, 0, 0, 0, 0, 0, 9, 0x1b, 0x58, 0x1b, 0x59, 0, 0, 0x0e, 0x10}
	r, err = parseNATPMP(mp, natpmpOpMapTCP)
	if err != nil || r.internal != 7000 || r.mapped != 7001 || r.lifetime != 3600 {
		t.Fatalf("map answer: %+v %v", r, err)
	}
	for name, b := range map[string][]byte{
		"short":       mp[:15],
		"wrong op":    append([]byte{0, 129}, mp[2:]...),
		"version 2":   append([]byte{2}, mp[1:]...),
		"refused":     {0, 130, 0, 2, 0, 0, 0, 9, 0x1b, 0x58, 0x1b, 0x59, 0, 0, 0x0e, 0x10},
		"empty":       {},
		"result 999":  {0, 130, 3, 0xe7, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0},
		"short addr":  addr[:10],
		"request set": {0, 2, 0, 0, 0x1b, 0x58, 0x1b, 0x58, 0, 0, 0, 1},
	} {
		op := byte(natpmpOpMapTCP)
		if strings.Contains(name, "addr") {
			op = natpmpOpAddress
		}
		if _, err := parseNATPMP(b, op); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPCPRoundTrip(t *testing.T) {
	req := pcpMap{lifetime: 600, client: netip.MustParseAddr("10.77.0.2"), nonce: [12]byte{1, 2, 3}, protocol: 6, internal: 7000,
		external: netip.AddrPortFrom(netip.Addr{}, 7000)}
	b := req.encode()
	if len(b) != pcpMapSize || b[0] != 2 || b[1] != 1 || b[24+12] != 6 {
		t.Fatalf("request %x", b)
	}
	// The gateway's answer: the request with the response bit, a result and the assignment.
	ans := append([]byte(nil), b...)
	ans[1] |= pcpResponse
	binary.BigEndian.PutUint32(ans[8:], 42) // epoch
	ext := netip.MustParseAddr("11.77.0.1").As16()
	copy(ans[24+20:], ext[:])
	m, err := parsePCPMap(ans)
	if err != nil || m.external != netip.MustParseAddrPort("11.77.0.1:7000") || m.nonce != req.nonce || m.epoch != 42 {
		t.Fatalf("answer: %+v %v", m, err)
	}
	ans[3] = 8
	if _, err := parsePCPMap(ans); err == nil || !strings.Contains(err.Error(), "no resources") {
		t.Errorf("NO_RESOURCES: %v", err)
	}
	if _, err := parsePCPMap([]byte{0, 129, 0, 1, 0, 0, 0, 0}); !errors.Is(err, errPCPUnsupported) {
		t.Errorf("NAT-PMP answer: %v, want errPCPUnsupported", err)
	}
	for _, n := range []int{0, 10, 59, 61} {
		if _, err := parsePCPMap(make([]byte, n)); err == nil {
			t.Errorf("%d bytes accepted", n)
		}
	}
}

func TestParseSSDPResponse(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://10.77.0.1:5000/rootDesc.xml\r\n\r\n"
	u, err := parseSSDPResponse([]byte(ok), gw)
	if err != nil || u.String() != "http://10.77.0.1:5000/rootDesc.xml" {
		t.Fatalf("%v %v", u, err)
	}
	for name, loc := range map[string]string{
		"other host":    "http://10.77.0.9:5000/rootDesc.xml",
		"public host":   "http://203.0.113.5/rootDesc.xml",
		"host name":     "http://router.local:5000/rootDesc.xml",
		"https":         "https://10.77.0.1/rootDesc.xml",
		"file":          "file:///etc/passwd",
		"user info":     "http://u:p@10.77.0.1/rootDesc.xml",
		"bad port":      "http://10.77.0.1:99999/rootDesc.xml",
		"ipv6 mapped":   "http://[::ffff:10.77.0.9]/x",
		"no location":   "",
		"decimal host":  "http://168643841/x",
		"trailing junk": "http://10.77.0.1.evil.example/x",
	} {
		msg := strings.Replace(ok, "http://10.77.0.1:5000/rootDesc.xml", loc, 1)
		if u, err := parseSSDPResponse([]byte(msg), gw); err == nil {
			t.Errorf("%s: followed %s", name, u)
		}
	}
	if _, err := parseSSDPResponse([]byte(strings.Replace(ok, "200 OK", "404 Not Found", 1)), gw); err == nil {
		t.Error("404 accepted")
	}
}

const rootDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>1</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`

func TestParseDescription(t *testing.T) {
	loc, _ := url.Parse("http://10.77.0.1:5000/rootDesc.xml")
	s, err := parseDescription([]byte(rootDesc), loc, gw)
	if err != nil || s.serviceType != wanServices[1] || s.control.String() != "http://10.77.0.1:5000/ctl/IPConn" {
		t.Fatalf("%+v %v", s, err)
	}
	for name, doc := range map[string]string{
		"foreign control URL": strings.Replace(rootDesc, "/ctl/IPConn", "http://203.0.113.5/ctl", 1),
		"foreign URLBase":     strings.Replace(rootDesc, "<specVersion>", "<URLBase>http://203.0.113.5:80/</URLBase><specVersion>", 1),
		"no WAN service":      strings.Replace(rootDesc, "WANIPConnection", "WANCommonInterfaceConfig", 1),
		"truncated":           rootDesc[:len(rootDesc)/2],
		"too deep":            strings.Repeat("<a>", maxXMLDepth+1) + strings.Repeat("</a>", maxXMLDepth+1),
		"too big":             "<a>" + strings.Repeat("x", maxXML) + "</a>",
		"too many tokens":     "<r>" + strings.Repeat("<a/>", maxXMLTokens) + "</r>",
		"entity":              `<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>`,
	} {
		if s, err := parseDescription([]byte(doc), loc, gw); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
}

func TestParseSOAPResponse(t *testing.T) {
	ok := `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
		`<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">` +
		`<NewExternalIPAddress>11.77.0.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`
	args, err := parseSOAPResponse([]byte(ok), "GetExternalIPAddress")
	if err != nil || args["NewExternalIPAddress"] != "11.77.0.1" {
		t.Fatalf("%v %v", args, err)
	}
	empty := `<s:Envelope xmlns:s="x"><s:Body><u:AddPortMappingResponse xmlns:u="y"/></s:Body></s:Envelope>`
	if _, err := parseSOAPResponse([]byte(empty), "AddPortMapping"); err != nil {
		t.Errorf("empty answer: %v", err)
	}
	fault := `<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>` +
		`<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode>` +
		`<errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`
	var se *SOAPError
	if _, err := parseSOAPResponse([]byte(fault), "AddPortMapping"); !errors.As(err, &se) || se.Code != 718 {
		t.Errorf("fault: %v", err)
	}
	if _, err := parseSOAPResponse([]byte(ok), "AddPortMapping"); err == nil {
		t.Error("answer to another action accepted")
	}
}

func FuzzParseRouteTable(f *testing.F) {
	f.Add([]byte(routeTable))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := parseRouteTable(b); err == nil && (!a.Is4() || a.IsUnspecified()) {
			t.Fatalf("gateway %v", a)
		}
	})
}

func FuzzParseNATPMP(f *testing.F) {
	f.Add([]byte{0, 128, 0, 0, 0, 0, 0, 9, 11, 77, 0, 1}, byte(0))
	f.Add([]byte{0, 130, 0, 0, 0, 0, 0, 9, 0x1b, 0x58, 0x1b, 0x59, 0, 0, 0x0e, 0x10}, byte(2))
	f.Fuzz(func(t *testing.T, b []byte, op byte) {
		op %= 3
		if r, err := parseNATPMP(b, op); err == nil && (r.result != 0 || (op == 0) != r.external.IsValid()) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParsePCP(f *testing.F) {
	req := pcpMap{lifetime: 600, client: gw, protocol: 17, internal: 1}
	ans := req.encode()
	ans[1] |= pcpResponse
	f.Add(ans)
	f.Add([]byte{0, 129, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parsePCPMap(b); err == nil && (m.result != 0 || !m.external.Addr().IsValid()) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func FuzzParseSSDPResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://10.77.0.1:5000/rootDesc.xml\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nLOCATION: http://10.77.0.9/x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := parseSSDPResponse(b, gw)
		if err != nil {
			return
		}
		if a, perr := netip.ParseAddr(u.Hostname()); perr != nil || a.Unmap() != gw || u.Scheme != "http" {
			t.Fatalf("followed %s", u)
		}
	})
}

func FuzzParseDescription(f *testing.F) {
	f.Add([]byte(rootDesc))
	f.Add([]byte(strings.Replace(rootDesc, "/ctl/IPConn", "http://203.0.113.5/ctl", 1)))
	loc, _ := url.Parse("http://10.77.0.1:5000/rootDesc.xml")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseDescription(b, loc, gw)
		if err != nil {
			return
		}
		if a, perr := netip.ParseAddr(s.control.Hostname()); perr != nil || a.Unmap() != gw {
			t.Fatalf("control URL %s not on the gateway", s.control)
		}
	})
}

func FuzzParseSOAPResponse(f *testing.F) {
	f.Add([]byte(`<s:Envelope xmlns:s="x"><s:Body><u:AddPortMappingResponse xmlns:u="y"/></s:Body></s:Envelope>`))
	f.Add([]byte(`<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>718</errorCode></UPnPError></detail></s:Fault></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if args, err := parseSOAPResponse(b, "AddPortMapping"); err == nil && len(args) > 32 {
			t.Fatalf("%d arguments", len(args))
		}
	})
}
