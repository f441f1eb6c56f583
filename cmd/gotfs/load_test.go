package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotfs/gotfs/internal/testenv"
	"github.com/gotfs/gotfs/status"
	"github.com/gotfs/gotfs/torrentfile"
)

// TestMountRandomReadersSoak: 32 concurrent readers do random reads on one mount (60 s in CI):
// no deadlock, every byte right, and the mount's peak RSS stays bounded.
func TestMountRandomReadersSoak(t *testing.T) {
	soakMount(t, 32)
}

// TestMountSmallCacheStress: 8 random readers on a mount whose --cache-size is a tenth of the
// torrent (60 s in CI): pieces are evicted and fetched again all the time while reads pin
// them, and every byte read must still be right (eviction never punches a piece a read uses).
func TestMountSmallCacheStress(t *testing.T) {
	soakMount(t, 8, "--cache-size", "6MiB")
}

// soakMount has readers goroutines read random ranges of a ~61 MiB torrent's files through
// a mount (with the extra mount flags) for 60 s in CI, 10 s elsewhere, comparing every byte.
func soakMount(t *testing.T, readers int, mountFlags ...string) {
	testenv.RequireFUSE(t)
	duration := 60 * time.Second
	if !testenv.InCI() {
		duration = 10 * time.Second
		t.Logf("soaking for %v (60 s in CI)", duration)
	}
	bin := buildBinary(t)
	src := t.TempDir()
	files := map[string]int{"a.bin": 40 << 20, "b.bin": 20<<20 + 12345, "c/small.bin": 777_777}
	writeRandomFiles(t, filepath.Join(src, "Soak"), files, 5)
	mi, raw, err := torrentfile.Create(t.Context(), filepath.Join(src, "Soak"), torrentfile.CreateOptions{PieceLength: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "soak.torrent")
	if err := os.WriteFile(tfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s1 := startTestSeeder(t, mi, src, "127.0.0.161:0")
	s2 := startTestSeeder(t, mi, src, "127.0.0.162:0")
	mp := t.TempDir()
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	args := append([]string{"--cache-dir", t.TempDir(), "--listen", "127.0.0.163:0",
		"--peer", s1.Addr().String(), "--peer", s2.Addr().String()}, mountFlags...)
	p := startMount(t, bin, append(args, tfile, mp)...)
	p.ready(t, filepath.Join(mp, "Soak", "a.bin"))

	want := map[string][]byte{}
	var names []string
	for name := range files {
		b, err := os.ReadFile(filepath.Join(src, "Soak", name))
		if err != nil {
			t.Fatal(err)
		}
		want[name] = b
		names = append(names, name)
	}
	var reads, bytesRead atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(duration)
	errs := make(chan string, readers)
	for g := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			handles := map[string]*os.File{}
			defer func() {
				for _, f := range handles {
					f.Close()
				}
			}()
			for time.Now().Before(stop) {
				name := names[rng.IntN(len(names))]
				f := handles[name]
				if f == nil {
					var err error
					if f, err = os.Open(filepath.Join(mp, "Soak", name)); err != nil {
						errs <- err.Error()
						return
					}
					handles[name] = f
				}
				data := want[name]
				off := rng.Int64N(int64(len(data)))
				buf := make([]byte, 1+rng.IntN(256<<10))
				n, err := f.ReadAt(buf, off)
				if n == 0 && err != nil {
					errs <- name + " at " + strconv.FormatInt(off, 10) + ": " + err.Error()
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					errs <- name + " at " + strconv.FormatInt(off, 10) + ": wrong bytes"
					return
				}
				reads.Add(1)
				bytesRead.Add(int64(n))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(duration + 60*time.Second):
		t.Fatalf("readers still blocked %v after the end: deadlock?\n%s", 60*time.Second, p.out.String())
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	procStatus, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var hwmKiB int64
	for _, line := range strings.Split(string(procStatus), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			hwmKiB, _ = strconv.ParseInt(strings.Fields(line)[1], 10, 64)
		}
	}
	t.Logf("%d reads, %d MiB, mount peak RSS %d MiB", reads.Load(), bytesRead.Load()>>20, hwmKiB>>10)
	if hwmKiB > 200<<10 {
		t.Errorf("mount peak RSS %d MiB, want under 200 MiB", hwmKiB>>10)
	}
	out, err := exec.Command(bin, "status", "--json", mp).Output()
	var st status.Mount
	if err != nil || json.Unmarshal(out, &st) != nil || len(st.Torrents) != 1 {
		t.Fatalf("status: %v: %s", err, out)
	}
	t.Logf("status: %d pieces evicted, %d of %d verified now", st.Torrents[0].Evicted, st.Torrents[0].VerifiedPieces, st.Torrents[0].Pieces)
	if len(mountFlags) > 0 && st.Torrents[0].Evicted == 0 {
		t.Errorf("a tenth of the torrent as --cache-size, yet nothing was evicted")
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	p.wait(t, 15*time.Second)
}
