package torrentfile

import (
	"fmt"
	"sort"
	"strconv"
)

// FromInfo builds a Metainfo from a raw info dictionary (as fetched with ut_metadata for a
// magnet link) and the trackers and web seeds known from elsewhere. infoBytes is kept as is,
// so the info hash is the SHA-1 of exactly those bytes.
func FromInfo(infoBytes []byte, trackers [][]string, webSeeds []string) (*Metainfo, error) {
	info, h, err := ParseInfo(infoBytes)
	if err != nil {
		return nil, err
	}
	mi := &Metainfo{InfoHash: h, InfoBytes: append([]byte(nil), infoBytes...), Info: *info, WebSeeds: webSeeds}
	for _, tier := range trackers {
		var t []string
		for _, u := range tier {
			if u != "" {
				t = append(t, u)
			}
		}
		if len(t) > 0 {
			mi.Trackers = append(mi.Trackers, t)
		}
	}
	return mi, nil
}

// Encode returns a .torrent file for mi: its trackers (announce and announce-list), web
// seeds (url-list and httpseeds), comment and creation date around the info dictionary's exact bytes, so the info hash
// is unchanged.
func (mi *Metainfo) Encode() ([]byte, error) {
	if len(mi.InfoBytes) == 0 {
		return nil, fmt.Errorf("encode torrent %s: no info dictionary", mi.Info.Name)
	}
	type entry struct {
		key string
		val []byte
	}
	var entries []entry
	str := func(s string) []byte { return []byte(strconv.Itoa(len(s)) + ":" + s) }
	list := func(items [][]byte) []byte {
		b := []byte{'l'}
		for _, it := range items {
			b = append(b, it...)
		}
		return append(b, 'e')
	}
	if len(mi.Trackers) > 0 && len(mi.Trackers[0]) > 0 {
		entries = append(entries, entry{"announce", str(mi.Trackers[0][0])})
		var tiers [][]byte
		for _, tier := range mi.Trackers {
			var urls [][]byte
			for _, u := range tier {
				urls = append(urls, str(u))
			}
			tiers = append(tiers, list(urls))
		}
		entries = append(entries, entry{"announce-list", list(tiers)})
	}
	if mi.Comment != "" {
		entries = append(entries, entry{"comment", str(mi.Comment)})
	}
	if mi.CreatedBy != "" {
		entries = append(entries, entry{"created by", str(mi.CreatedBy)})
	}
	if !mi.CreationDate.IsZero() {
		entries = append(entries, entry{"creation date", []byte("i" + strconv.FormatInt(mi.CreationDate.Unix(), 10) + "e")})
	}
	entries = append(entries, entry{"info", mi.InfoBytes})
	for _, seeds := range []struct {
		key  string
		urls []string
	}{{"url-list", mi.WebSeeds}, {"httpseeds", mi.HTTPSeeds}} {
		if len(seeds.urls) > 0 {
			var urls [][]byte
			for _, u := range seeds.urls {
				urls = append(urls, str(u))
			}
			entries = append(entries, entry{seeds.key, list(urls)})
		}
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].key < entries[b].key })
	out := []byte{'d'}
	for _, e := range entries {
		out = append(out, str(e.key)...)
		out = append(out, e.val...)
	}
	out = append(out, 'e')
	return out, nil
}
