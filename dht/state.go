package dht

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// state is what is saved between runs: our node ids and the routing tables' nodes.
type state struct {
	id    [20]byte   // in the IPv4 DHT
	id6   [20]byte   // in the IPv6 DHT (zero in files written before BEP 32: then id)
	nodes []nodeInfo // of both families
}

func (st *state) idOf(v6 bool) [20]byte {
	if v6 && st.id6 != ([20]byte{}) {
		return st.id6
	}
	return st.id
}

// nodesOf returns the saved nodes of one family.
func (st *state) nodesOf(v6 bool) []nodeInfo {
	var out []nodeInfo
	for _, n := range st.nodes {
		if n.Addr.Addr().Is6() == v6 {
			out = append(out, n)
		}
	}
	return out
}

type stateFile struct {
	ID    string      `json:"id"`
	ID6   string      `json:"id6,omitempty"`
	Nodes []stateNode `json:"nodes"`
}

type stateNode struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// maxStateNodes bounds the nodes read back from a state file (both tables).
const maxStateNodes = 2 * maxBuckets * bucketSize

// parseStateID decodes a hex node id; "" gives zero.
func parseStateID(path, s string) ([20]byte, error) {
	if s == "" {
		return [20]byte{}, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		return [20]byte{}, fmt.Errorf("load dht state %s: invalid node id %q", path, s)
	}
	return [20]byte(b), nil
}

func loadState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load dht state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("load dht state %s: %w", path, err)
	}
	return parseState(path, &f)
}

// parseState checks a decoded state file. Nodes with a malformed id or address, or an
// address no table may hold (zones, IPv6 link-local, unusable), are skipped.
func parseState(path string, f *stateFile) (*state, error) {
	st := &state{}
	var err error
	if st.id, err = parseStateID(path, f.ID); err != nil {
		return nil, err
	}
	if st.id6, err = parseStateID(path, f.ID6); err != nil {
		return nil, err
	}
	for _, n := range f.Nodes {
		if len(st.nodes) == maxStateNodes {
			break
		}
		b, err := hex.DecodeString(n.ID)
		ap, err2 := netip.ParseAddrPort(n.Addr)
		if err != nil || len(b) != 20 || err2 != nil {
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ip := ap.Addr(); ip.Zone() != "" || (ip.Is6() && ip.IsLinkLocalUnicast()) || !usableAddr(ap, false) {
			continue
		}
		st.nodes = append(st.nodes, nodeInfo{ID: [20]byte(b), Addr: ap})
	}
	return st, nil
}

// saveState writes st to path atomically (temporary file, fsync, rename, fsync the folder).
func saveState(path string, st *state) error {
	f := stateFile{ID: hex.EncodeToString(st.id[:]), Nodes: []stateNode{}}
	if st.id6 != ([20]byte{}) {
		f.ID6 = hex.EncodeToString(st.id6[:])
	}
	for _, n := range st.nodes {
		f.Nodes = append(f.Nodes, stateNode{ID: hex.EncodeToString(n.ID[:]), Addr: n.Addr.String()})
	}
	data, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return fmt.Errorf("save dht state: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save dht state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save dht state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save dht state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save dht state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save dht state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save dht state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
