package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// plainEvery is how often a non-terminal gets a progress line.
const plainEvery = 5 * time.Second

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a one-line bar on a terminal, or prints a plain line every few seconds
// elsewhere (logs, pipes, CI).
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	tty      bool
	start    time.Time
	last     time.Time
	lastDone int64
	rate     float64
	drawn    bool
	started  bool
	// counts makes the bar print plain numbers (pieces) instead of sizes.
	counts bool
}

func newProgress(w io.Writer, label string) *progress {
	now := time.Now()
	return &progress{w: w, label: label, tty: isTerminal(w), start: now, last: now}
}

// newCountProgress is a bar over a count of things (pieces), named by the update's note.
func newCountProgress(w io.Writer, label string) *progress {
	p := newProgress(w, label)
	p.counts = true
	return p
}

// update reports done of total bytes, with an extra note (peers, ...).
func (p *progress) update(done, total int64, note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.started {
		// The first report is the baseline: what was already there is not a rate.
		p.started, p.last, p.lastDone = true, now, done
	}
	minGap := 200 * time.Millisecond
	if !p.tty {
		minGap = plainEvery
	}
	if now.Sub(p.last) < minGap && done < total {
		return
	}
	if dt := now.Sub(p.last).Seconds(); dt > 0 {
		inst := float64(done-p.lastDone) / dt
		if p.rate == 0 {
			p.rate = inst
		} else {
			p.rate = 0.3*inst + 0.7*p.rate
		}
	}
	p.last, p.lastDone = now, done
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	eta := "--"
	if p.rate > 0 && total > done {
		eta = (time.Duration(float64(total-done)/p.rate) * time.Second / time.Second).Round(time.Second).String()
	}
	text := fmt.Sprintf("%s %5.1f%% %s/%s %s/s ETA %s", p.label, pct, formatSize(done), formatSize(total), formatSize(int64(p.rate)), eta)
	if p.counts {
		text = fmt.Sprintf("%s %5.1f%% %d/%d %s", p.label, pct, done, total, note)
		note = ""
	}
	if note != "" {
		text += " " + note
	}
	if p.tty {
		const width = 24
		filled := int(pct / 100 * width)
		bar := "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] "
		fmt.Fprintf(p.w, "\r\033[K%s%s", bar, text)
		p.drawn = true
		return
	}
	fmt.Fprintln(p.w, text)
}

// finish ends the bar's line.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
