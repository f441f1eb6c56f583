package main

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/gotfs/gotfs/lsd"
	"github.com/gotfs/gotfs/portmap"
)

// localDiscovery is the engine's part that reaches beyond the peer port: BEP 14 local service
// discovery (unless --no-lsd) and the router's port mapping (unless --no-port-mapping). Both
// are left out when the peers listen on a loopback address: nobody on the network could
// connect to it.
type localDiscovery struct {
	lsd   *lsd.Service
	ports *portmap.Mapper

	mu       sync.Mutex
	external netip.Addr
}

// start starts what the flags allow; a failure is logged, never fatal (the engine works
// without either).
func (l *localDiscovery) start(a *app, f *engineFlags, e *engine) {
	listen := e.client.Addr()
	local := listen.Addr().Unmap()
	if local.IsLoopback() {
		a.log.Debug("peer port on loopback: no local discovery, no port mapping")
		return
	}
	if local.IsUnspecified() {
		local = netip.Addr{}
	}
	if !f.noLSD {
		svc, err := lsd.New(lsd.Config{Port: listen.Port(), LocalAddr: local, Logger: a.log,
			Torrents: e.client.LocalTorrents,
			OnPeer: func(ih [20]byte, peer netip.AddrPort) {
				if e.client.AddLocalPeer(ih, peer) {
					a.log.Info("peer found on the local network", "peer", peer)
				}
			}})
		if err != nil {
			a.log.Info("local service discovery off", "err", err)
		}
		l.lsd = svc
	}
	if !f.noPortMapping {
		udp := listen.Port()
		if e.dht != nil {
			udp = e.dht.Addr().Port() // the DHT's port, which may differ from the peer port
		}
		m, err := portmap.Start(portmap.Config{TCPPort: listen.Port(), UDPPort: udp, Logger: a.log,
			OnChange: func(s portmap.Status) {
				if s.Err == nil && s.External != l.externalAddr() {
					a.log.Info("router forwards the peer port", "method", s.Method, "external", s.External, "mappings", len(s.Mappings))
				}
				l.mu.Lock()
				l.external = s.External
				l.mu.Unlock()
				if s.Err == nil && s.External.IsValid() && e.dht != nil {
					e.dht.SetExternalAddr(s.External) // the node id follows it (BEP 42)
				}
			}})
		if err != nil {
			a.log.Info("port mapping off", "err", err)
		}
		l.ports = m
	}
}

// externalAddr is our address on the Internet as the router reported it through port
// mapping, or an invalid address while unknown. The DHT takes it for its node id (BEP 42) as
// soon as the router reports it.
func (l *localDiscovery) externalAddr() netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.external
}

// close removes the router's mappings and stops local discovery.
func (l *localDiscovery) close() error {
	var err error
	if l.ports != nil {
		err = l.ports.Close()
	}
	if l.lsd != nil {
		err = errors.Join(err, l.lsd.Close())
	}
	return err
}
