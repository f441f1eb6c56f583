package torrentfile

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// EntryName is the name a torrent gets at the root of a mount, and in the paths gotfs serves
// over HTTP: its files' first path element (the torrent's name), or, when taken reports that
// name as used by another torrent, the name followed by "~" and the first 8 hex digits of the
// info hash. It fails when the torrent has no visible file or both names are taken.
func (m *Metainfo) EntryName(taken func(name string) bool) (string, error) {
	visible := m.Info.VisibleFiles()
	if len(visible) == 0 {
		return "", errors.New("no files")
	}
	name := m.Info.Files[visible[0]].Path[0]
	if !taken(name) {
		return name, nil
	}
	alt := name + "~" + hex.EncodeToString(m.InfoHash[:4])
	if taken(alt) {
		return "", fmt.Errorf("name %q is taken", alt)
	}
	return alt, nil
}
