package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Nginx is a real nginx (Debian's package) serving a folder over HTTP on a loopback address,
// for web seed tests.
//
// It runs as one process (master_process off) with its own configuration, logs, pid file and
// temporary folders under a test folder, so it reads no system configuration and writes
// nothing outside that folder. As root it keeps running as root, so it can read the test's
// private temporary folders.
type Nginx struct {
	// URL is the server's root URL, "http://IP:PORT/".
	URL    string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	output *LockedBuffer
}

// StartNginx starts nginx serving root on a free port of ip (a 127.0.0.x address) and
// returns once it accepts connections. The process is killed when the test ends. In CI a
// missing nginx fails the test; elsewhere it skips it.
func StartNginx(t testing.TB, ip, root string) *Nginx {
	t.Helper()
	bin := "/usr/sbin/nginx" // Debian's place, which a user's PATH may lack
	if _, err := os.Stat(bin); err != nil {
		bin = RequireBinary(t, "nginx")
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("nginx: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		n := &Nginx{dir: t.TempDir()}
		if lastErr = n.start(bin, ip, absRoot); lastErr == nil {
			t.Cleanup(n.stop)
			return n
		}
		n.stop()
	}
	t.Fatalf("nginx: %v", lastErr)
	return nil
}

const nginxConf = `# written by gotfs's testenv.StartNginx
worker_processes 1;
master_process off;
%s
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
	log_format gotfs '$connection $status "$request" "$http_range" $body_bytes_sent';
	access_log %[2]s/access.log gotfs;
	client_body_temp_path %[2]s/tmp/body;
	proxy_temp_path %[2]s/tmp/proxy;
	fastcgi_temp_path %[2]s/tmp/fastcgi;
	uwsgi_temp_path %[2]s/tmp/uwsgi;
	scgi_temp_path %[2]s/tmp/scgi;
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 100000;
	server {
		listen %[3]s;
		root %[4]s;
		location / { }
	}
}
`

func (n *Nginx) start(bin, ip, root string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	addr := l.Addr().String()
	l.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := filepath.Join(n.dir, "nginx.conf")
	if err := os.MkdirAll(filepath.Join(n.dir, "tmp"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, user, n.dir, addr, root), 0o644); err != nil {
		return err
	}
	n.output = &LockedBuffer{}
	// -e sets the error log before the configuration is read (else nginx opens the
	// compiled-in one first).
	n.cmd = exec.Command(bin, "-p", n.dir, "-c", conf, "-e", filepath.Join(n.dir, "error.log"), "-g", "daemon off;")
	n.cmd.Dir = n.dir
	n.cmd.Stdout = n.output
	n.cmd.Stderr = n.output
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	n.exited = make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		close(n.exited)
	}()
	n.URL = "http://" + addr + "/"
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("nginx exited at start (%v): %s%s", n.cmd.ProcessState, n.output, n.ErrorLog())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not answer on %s within 10s: %s%s", addr, n.output, n.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *Nginx) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	if n.exited != nil {
		<-n.exited
	}
}

// AccessLog returns nginx's access log so far, one line per request:
// `CONNECTION STATUS "REQUEST LINE" "RANGE HEADER" BODY_BYTES`, where CONNECTION is nginx's
// serial number of the TCP connection (requests on one kept-alive connection share it).
func (n *Nginx) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "access.log"))
	return string(b)
}

// ErrorLog returns nginx's error log so far.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	return string(b)
}
