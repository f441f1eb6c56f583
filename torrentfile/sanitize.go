package torrentfile

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxElementBytes is where sanitizeElement starts cutting a long path element (libtorrent's
// rule: past 240 bytes keep only a short extension).
const maxElementBytes = 240

// sanitizeElement makes one path element safe the way libtorrent's
// sanitize_append_path_element does on POSIX systems. It returns "" when the element must be
// dropped ("", ".", ".." and what filters down to them are dropped; callers substitute "_"
// where a name is required).
//
//   - '/' and '\' and the Unicode direction overrides U+200E, U+200F, U+202A–U+202E are removed;
//   - control characters (below 0x20) and invalid UTF-8 become '_';
//   - past 240 bytes the rest is cut, keeping an extension of up to 9 bytes.
func sanitizeElement(e string) string {
	if e == "" {
		return "_" // libtorrent substitutes "_" for an empty element
	}
	if e == "." {
		return ""
	}
	var b strings.Builder
	added, dots := 0, 0
	foundExt := false
	for i := 0; i < len(e); {
		r, n := utf8.DecodeRuneInString(e[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteByte('_')
			added++
		case r == '/' || r == '\\' || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e):
			// filtered out entirely
		case r < 0x20:
			b.WriteByte('_')
			added++
		default:
			b.WriteString(e[i : i+n])
			if r == '.' {
				dots++
			}
			added += n
		}
		i += n
		if added >= maxElementBytes && !foundExt {
			// Keep an extension: a dot among the last 9 bytes of the element.
			dot := -1
			for j := len(e) - 1; j > max(len(e)-10, i-1); j-- {
				if e[j] == '.' {
					dot = j
					break
				}
			}
			if dot < 0 {
				break
			}
			foundExt = true
			i = dot
		}
	}
	s := b.String()
	if added == dots && added <= 2 {
		return "" // ".", ".." (possibly after filtering)
	}
	return s
}

// pathKey is how two paths are compared for clashes: case-insensitively (ASCII), as
// libtorrent does, so a torrent also stays valid on case-insensitive file systems.
func pathKey(elems []string) string {
	return strings.ToLower(strings.Join(elems, "/"))
}

// resolveDuplicates renames files whose path clashes with an earlier file or with a folder
// ("dir/name.ext" becomes "dir/name.1.ext", then ".2", ...), as libtorrent does. Pad files
// never clash. It fails after maxDuplicateRenames attempts in total.
func resolveDuplicates(files []File) error {
	taken := make(map[string]struct{}, 2*len(files))
	for _, f := range files {
		if f.Padding {
			continue
		}
		for i := 1; i < len(f.Path); i++ {
			taken[pathKey(f.Path[:i])] = struct{}{}
		}
	}
	collisions := 0
	for i := range files {
		f := &files[i]
		if f.Padding {
			continue
		}
		k := pathKey(f.Path)
		if _, clash := taken[k]; !clash {
			taken[k] = struct{}{}
			continue
		}
		last := f.Path[len(f.Path)-1]
		stem, ext := last, ""
		if dot := strings.LastIndexByte(last, '.'); dot >= 0 {
			stem, ext = last[:dot], last[dot:]
		}
		elems := append([]string(nil), f.Path...)
		for n := 1; ; n++ {
			elems[len(elems)-1] = fmt.Sprintf("%s.%d%s", stem, n, ext)
			k := pathKey(elems)
			if _, clash := taken[k]; !clash {
				taken[k] = struct{}{}
				f.Path = elems
				break
			}
			collisions++
			if collisions > maxDuplicateRenames {
				return errors.New("too many duplicate file names")
			}
		}
	}
	return nil
}

// checkHybrid checks that a hybrid v1/v2 torrent's v2 "file tree" lists the same files
// (paths and lengths, pad files aside) as its v1 part, as libtorrent requires.
func checkHybrid(d map[string]any, info *Info) error {
	tree, ok := d["file tree"].(map[string]any)
	if !ok {
		return errors.New("missing or invalid file tree")
	}
	type leaf struct {
		path   []string
		length int64
	}
	var leaves []leaf
	type node struct {
		dir  map[string]any
		path []string
	}
	// Iterative walk with a depth bound; the comparison below is by path, so the walk
	// order does not matter.
	stack := []node{{tree, nil}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if len(n.path) > 100 {
			return errors.New("file tree too deep")
		}
		for _, k := range sortedKeys(n.dir) {
			child, ok := n.dir[k].(map[string]any)
			if !ok || k == "" {
				return fmt.Errorf("invalid file tree entry %q", k)
			}
			p := append(append([]string(nil), n.path...), sanitizeOrUnderscore(k))
			if fd, ok := child[""].(map[string]any); ok && len(child) == 1 {
				l, ok := fd["length"].(int64)
				if !ok || l < 0 {
					return fmt.Errorf("file %q has no valid length", k)
				}
				attr, _ := fd["attr"].(string)
				if strings.ContainsRune(attr, 'p') {
					return fmt.Errorf("file %q is a pad file", k)
				}
				if strings.ContainsRune(attr, 'l') {
					continue
				}
				leaves = append(leaves, leaf{p, l})
				continue
			}
			stack = append(stack, node{child, p})
		}
	}
	want := map[string]int64{}
	for _, l := range leaves {
		want[pathKey(l.path)] = l.length
	}
	got := 0
	for _, f := range info.Files {
		if f.Padding {
			continue
		}
		p := f.Path[1:]
		if !info.MultiFile {
			p = f.Path
		}
		l, ok := want[pathKey(p)]
		if !ok || l != f.Length {
			return fmt.Errorf("v1 file %q does not match the v2 file tree", strings.Join(p, "/"))
		}
		got++
	}
	if got != len(leaves) {
		return fmt.Errorf("v1 lists %d files, the v2 file tree %d", got, len(leaves))
	}
	return nil
}

func sanitizeOrUnderscore(s string) string {
	if s = sanitizeElement(s); s == "" {
		return "_"
	}
	return s
}
