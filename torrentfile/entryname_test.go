package torrentfile

import "testing"

func TestEntryName(t *testing.T) {
	mi := &Metainfo{InfoHash: Hash{0xab, 0xcd, 0x01, 0x23, 0xff}, Info: Info{Name: "Movie", Files: []File{
		{Path: []string{"Movie", ".pad", "0"}, Padding: true},
		{Path: []string{"Movie", "a.mkv"}, Length: 1},
	}}}
	used := map[string]bool{}
	taken := func(n string) bool { return used[n] }
	for _, want := range []string{"Movie", "Movie~abcd0123"} {
		got, err := mi.EntryName(taken)
		if err != nil || got != want {
			t.Fatalf("EntryName = %q, %v; want %q", got, err, want)
		}
		used[got] = true
	}
	if got, err := mi.EntryName(taken); err == nil {
		t.Errorf("both names taken: got %q, want an error", got)
	}
	empty := &Metainfo{Info: Info{Name: "pads", Files: []File{{Path: []string{"pads", "p"}, Padding: true}}}}
	if got, err := empty.EntryName(taken); err == nil {
		t.Errorf("no visible file: got %q, want an error", got)
	}
}
