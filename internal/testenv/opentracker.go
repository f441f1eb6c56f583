package testenv

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Opentracker is a real opentracker process serving 127.0.0.1, for interop tests.
//
// What Debian's build (0.0~git20210823) does, found by running it:
//   - It serves only whitelisted info hashes (WANT_ACCESSLIST_WHITE); others get the failure
//     reason "Requested download is not authorized for use with this tracker.". An announce
//     with event=stopped is answered even for hashes not on the list, and a scrape of an
//     unlisted hash returns an empty "files" dictionary.
//   - It chroots to -d DIR (when run as root; otherwise it just works in DIR) and then reads
//     the -w FILE, a path inside DIR, holding one hex info hash per line. As root it also
//     drops privileges to "nobody", so DIR and FILE must be world-readable. SIGHUP reloads
//     the list (asynchronously: Allow polls until the hash is accepted).
//   - -i 127.0.0.1 must come before -p/-P: it sets the address for the following ports.
//   - It only speaks compact peer lists over HTTP (compact=0 gets "Invalid Request").
//   - It takes the peer's address from the packet's source, so every peer in these tests is
//     127.0.0.1: peers are told apart by port. Loopback peers are returned, and the
//     announcing peer itself is included in the peer list it gets back.
type Opentracker struct {
	dir     string
	list    string // whitelist path
	tcpPort int
	udpPort int
	cmd     *exec.Cmd
	exited  chan struct{}
	output  *LockedBuffer
	mu      sync.Mutex
	allowed map[[20]byte]bool
}

const whitelistName = "whitelist.txt"

// StartOpentracker starts opentracker on free ports of 127.0.0.1 with hashes whitelisted and
// returns once both the HTTP and the UDP port answer and the first hash (if any) is
// accepted. The process is killed when the test ends. In CI a missing opentracker fails the
// test; elsewhere it skips it.
func StartOpentracker(t testing.TB, hashes ...[20]byte) *Opentracker {
	t.Helper()
	bin := RequireBinary(t, "opentracker")
	dir := t.TempDir()
	// opentracker drops to "nobody" after chrooting into dir when run as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("opentracker: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // free ports can be taken between probe and bind
		o := &Opentracker{dir: dir, list: filepath.Join(dir, whitelistName), allowed: make(map[[20]byte]bool)}
		for _, h := range hashes {
			o.allowed[h] = true
		}
		if err := o.writeList(); err != nil {
			t.Fatalf("opentracker: %v", err)
		}
		if lastErr = o.start(bin); lastErr == nil {
			t.Cleanup(o.stop)
			if len(hashes) > 0 {
				if err := o.waitAllowed(hashes[0], 10*time.Second); err != nil {
					t.Fatalf("opentracker: %v\noutput:\n%s", err, o.output)
				}
			}
			return o
		}
		o.stop()
	}
	t.Fatalf("opentracker: %v", lastErr)
	return nil
}

func freePorts() (tcp, udp int, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("find free TCP port: %w", err)
	}
	tcp = l.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return 0, 0, fmt.Errorf("find free UDP port: %w", err)
	}
	udp = pc.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	pc.Close()
	return tcp, udp, nil
}

func (o *Opentracker) start(bin string) error {
	var err error
	o.tcpPort, o.udpPort, err = freePorts()
	if err != nil {
		return err
	}
	o.output = &LockedBuffer{}
	o.cmd = exec.Command(bin,
		"-i", "127.0.0.1",
		"-p", strconv.Itoa(o.tcpPort),
		"-P", strconv.Itoa(o.udpPort),
		"-d", o.dir,
		"-w", whitelistName)
	o.cmd.Dir = o.dir
	o.cmd.Stdout = o.output
	o.cmd.Stderr = o.output
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	o.exited = make(chan struct{})
	go func() {
		_ = o.cmd.Wait()
		close(o.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-o.exited:
			return fmt.Errorf("opentracker exited at start (%v); output:\n%s", o.cmd.ProcessState, o.output)
		default:
		}
		if o.tcpReady() && o.udpReady() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("opentracker did not answer on 127.0.0.1:%d (TCP) and :%d (UDP) within 10s; output:\n%s",
				o.tcpPort, o.udpPort, o.output)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (o *Opentracker) tcpReady() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.tcpPort)), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// udpReady sends a BEP 15 connect request and waits briefly for the answer.
func (o *Opentracker) udpReady() bool {
	c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.udpPort)))
	if err != nil {
		return false
	}
	defer c.Close()
	req := make([]byte, 16)
	binary.BigEndian.PutUint64(req[0:], 0x41727101980)
	binary.BigEndian.PutUint32(req[12:], 0x5eed)
	if _, err := c.Write(req); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return err == nil && n >= 16 && binary.BigEndian.Uint32(buf[4:]) == 0x5eed
}

func (o *Opentracker) stop() {
	if o.cmd == nil || o.cmd.Process == nil {
		return
	}
	_ = o.cmd.Process.Kill()
	if o.exited != nil {
		<-o.exited
	}
}

// HTTPAnnounceURL returns the tracker's HTTP announce URL.
func (o *Opentracker) HTTPAnnounceURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/announce", o.tcpPort)
}

// UDPAnnounceURL returns the tracker's UDP announce URL.
func (o *Opentracker) UDPAnnounceURL() string {
	return fmt.Sprintf("udp://127.0.0.1:%d/announce", o.udpPort)
}

func (o *Opentracker) writeList() error {
	var sb strings.Builder
	for h := range o.allowed {
		sb.WriteString(hex.EncodeToString(h[:]))
		sb.WriteByte('\n')
	}
	tmp := o.list + ".tmp"
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("write whitelist: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // umask
		return fmt.Errorf("write whitelist: %w", err)
	}
	if err := os.Rename(tmp, o.list); err != nil {
		return fmt.Errorf("write whitelist: %w", err)
	}
	return nil
}

// Allow adds h to the whitelist, makes opentracker reload it (SIGHUP) and waits until an
// announce for h is accepted.
func (o *Opentracker) Allow(t testing.TB, h [20]byte) {
	t.Helper()
	o.mu.Lock()
	o.allowed[h] = true
	err := o.writeList()
	o.mu.Unlock()
	if err != nil {
		t.Fatalf("opentracker: %v", err)
	}
	if err := o.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("opentracker: SIGHUP: %v", err)
	}
	if err := o.waitAllowed(h, 10*time.Second); err != nil {
		t.Fatalf("opentracker: %v\noutput:\n%s", err, o.output)
	}
}

// probePort is the port of the short-lived peer waitAllowed announces (and then stops).
const probePort = 1

// waitAllowed polls until opentracker accepts an announce for h. The probe peer
// (127.0.0.1:1) is removed again with event=stopped, so it never shows in peer lists.
func (o *Opentracker) waitAllowed(h [20]byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	base := fmt.Sprintf("%s?info_hash=%s&peer_id=-GTPROBE-00000000000&port=%d&uploaded=0&downloaded=0&left=1&compact=1&numwant=0",
		o.HTTPAnnounceURL(), escapeAll(h[:]), probePort)
	var last string
	for {
		body, err := httpGet(ctx, base)
		if err == nil && !bytes.Contains(body, []byte("failure reason")) && bytes.HasPrefix(body, []byte("d")) {
			if _, err := httpGet(ctx, base+"&event=stopped"); err != nil {
				return fmt.Errorf("remove probe peer: %w", err)
			}
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = string(body)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("info hash %x not accepted after %v (last answer: %s)", h, timeout, last)
		case <-o.exited:
			return fmt.Errorf("opentracker exited (%v)", o.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func escapeAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	// No keep-alive: leave no idle connections (or their goroutines) behind.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<16))
}
