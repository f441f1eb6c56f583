package dht

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// state is what is saved between runs: our node id and the routing table's nodes.
type state struct {
	id    [20]byte
	nodes []nodeInfo
}

type stateFile struct {
	ID    string      `json:"id"`
	Nodes []stateNode `json:"nodes"`
}

type stateNode struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// maxStateNodes bounds the nodes read back from a state file.
const maxStateNodes = maxBuckets * bucketSize

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
	st := &state{}
	if f.ID != "" {
		b, err := hex.DecodeString(f.ID)
		if err != nil || len(b) != 20 {
			return nil, fmt.Errorf("load dht state %s: invalid node id %q", path, f.ID)
		}
		st.id = [20]byte(b)
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
		st.nodes = append(st.nodes, nodeInfo{ID: [20]byte(b), Addr: ap})
	}
	return st, nil
}

// saveState writes st to path atomically (temporary file, fsync, rename, fsync the folder).
func saveState(path string, st *state) error {
	f := stateFile{ID: hex.EncodeToString(st.id[:]), Nodes: []stateNode{}}
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
