// Command wanlab runs the simulated wide-area network of the benchmarks: forwarders that add
// one-way delay and a rate cap in front of seeders, and a tracker that hands out only the
// forwarders, so that gotfs and the clients it is compared with see the same slow swarm.
//
//	wanlab -tracker 127.0.0.1:7100 \
//	  -link 127.0.0.21:7000=127.0.0.11:7000,delay=10ms,rate=20MB \
//	  -link 127.0.0.22:7000=127.0.0.12:7000,delay=120ms,rate=1MB
//
// It prints "ready" once everything listens and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gotfs/gotfs/internal/netsim"
)

// linkSpec is one -link flag: LISTEN=TARGET[,delay=D][,rate=R] with R in bytes per second
// (suffixes KB, MB: 1000-based, as link speeds are).
type linkSpec struct {
	listen, target string
	link           netsim.Link
}

type linkFlags []linkSpec

func (l *linkFlags) String() string { return fmt.Sprint(len(*l), " links") }

func (l *linkFlags) Set(s string) error {
	parts := strings.Split(s, ",")
	listen, target, ok := strings.Cut(parts[0], "=")
	if !ok {
		return errors.New("want LISTEN=TARGET[,delay=D][,rate=R]")
	}
	spec := linkSpec{listen: listen, target: target}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "delay":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("delay %q: %v", v, err)
			}
			spec.link.Delay = d
		case "rate":
			r, err := parseRate(v)
			if err != nil {
				return err
			}
			spec.link.Rate = r
		default:
			return fmt.Errorf("unknown link option %q", k)
		}
	}
	*l = append(*l, spec)
	return nil
}

func parseRate(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("rate %q: want bytes per second, e.g. 500KB or 2MB", s)
	}
	return n * mult, nil
}

func main() {
	var links linkFlags
	trackerAddr := flag.String("tracker", "", "address of the tracker that hands out the forwarders (HTTP, /announce)")
	flag.Var(&links, "link", "LISTEN=TARGET[,delay=D][,rate=R]: a forwarder (repeatable)")
	flag.Parse()
	if err := run(*trackerAddr, links); err != nil {
		fmt.Fprintln(os.Stderr, "wanlab:", err)
		os.Exit(1)
	}
}

func run(trackerAddr string, links []linkSpec) error {
	if len(links) == 0 {
		return errors.New("no -link given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var peers []netip.AddrPort
	for _, l := range links {
		f, err := netsim.NewForwarder(l.listen, l.target, l.link, nil)
		if err != nil {
			return err
		}
		defer f.Close()
		peers = append(peers, f.Addr().(*net.TCPAddr).AddrPort())
	}
	if trackerAddr != "" {
		st, err := netsim.NewStaticTracker(peers)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", trackerAddr)
		if err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
		srv := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}
