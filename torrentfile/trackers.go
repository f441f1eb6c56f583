package torrentfile

import (
	"net"
	"slices"
	"strconv"
	"strings"
)

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// parseTrackers reads announce-list (BEP 12) into tiers, trimming URLs, dropping empty ones
// and duplicates (the first occurrence wins) and empty tiers. Without a usable announce-list,
// the announce URL is the single tier.
func parseTrackers(top map[string]any) [][]string {
	seen := map[string]bool{}
	var tiers [][]string
	if al, ok := top["announce-list"].([]any); ok {
		for _, t := range al {
			tl, ok := t.([]any)
			if !ok {
				continue
			}
			var tier []string
			for _, u := range tl {
				s, ok := u.(string)
				if !ok {
					continue
				}
				s = strings.TrimSpace(s)
				if s == "" || seen[s] {
					continue
				}
				seen[s] = true
				tier = append(tier, s)
			}
			if len(tier) > 0 {
				tiers = append(tiers, tier)
			}
		}
	}
	if len(tiers) == 0 {
		if s, ok := top["announce"].(string); ok {
			if s = strings.TrimSpace(s); s != "" {
				tiers = [][]string{{s}}
			}
		}
	}
	return tiers
}

// parseURLList reads the value of key (url-list, BEP 19, or httpseeds, BEP 17): a string or a
// list of strings, trimmed, without empty entries or duplicates.
func parseURLList(top map[string]any, key string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v any) {
		s, ok := v.(string)
		if !ok {
			return
		}
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			return
		}
		seen[s] = true
		out = append(out, s)
	}
	switch v := top[key].(type) {
	case string:
		add(v)
	case []any:
		for _, e := range v {
			add(e)
		}
	}
	return out
}

// parseNodes reads the BEP 5 "nodes" list: entries are [host, port] lists or "host:port"
// strings. Invalid entries are skipped.
func parseNodes(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range list {
		switch n := e.(type) {
		case []any:
			if len(n) < 2 {
				continue
			}
			host, ok1 := n[0].(string)
			port, ok2 := n[1].(int64)
			host = strings.TrimSpace(host)
			if !ok1 || !ok2 || host == "" || port <= 0 || port > 65535 {
				continue
			}
			out = append(out, net.JoinHostPort(host, strconv.FormatInt(port, 10)))
		case string:
			host, port, err := net.SplitHostPort(strings.TrimSpace(n))
			if err != nil || host == "" {
				continue
			}
			p, err := strconv.Atoi(port)
			if err != nil || p <= 0 || p > 65535 {
				continue
			}
			out = append(out, net.JoinHostPort(host, port))
		}
	}
	return out
}
