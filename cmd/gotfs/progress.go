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

// defaultWidth is the width assumed for a terminal that does not say its own.
const defaultWidth = 80

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalWidth is w's width in columns, or 0 when w is not a terminal.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols <= 0 {
		return 0
	}
	return cols
}

// progress draws a one-line bar on a terminal, or prints a plain line every few seconds
// elsewhere (logs, pipes, CI).
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	tty      bool
	width    func() int // the terminal's width now (it may be resized)
	now      func() time.Time
	last     time.Time
	lastDone int64
	rate     float64 // smoothed, per second
	drawn    bool
	started  bool
	// counts makes the bar print plain numbers (pieces) instead of sizes.
	counts bool
}

func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, label: label, tty: isTerminal(w), width: func() int { return terminalWidth(w) }, now: time.Now}
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
	now := p.now()
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
	text := p.text(done, total, note)
	if p.tty {
		width := p.width()
		if width <= 0 {
			width = defaultWidth
		}
		fmt.Fprintf(p.w, "\r\033[K%s", barLine(text, done, total, width))
		p.drawn = true
		return
	}
	fmt.Fprintln(p.w, text)
}

// text is the bar's words: percent, amounts, rate, time left and the note.
func (p *progress) text(done, total int64, note string) string {
	pct := percentOf(done, total)
	if p.counts {
		return strings.TrimSpace(fmt.Sprintf("%s %5.1f%% %d/%d %s", p.label, pct, done, total, note))
	}
	text := fmt.Sprintf("%s %5.1f%% %s/%s %s/s ETA %s", p.label, pct, formatSize(done), formatSize(total),
		formatSize(int64(p.rate)), eta(total-done, p.rate))
	if note != "" {
		text += " " + note
	}
	return text
}

func percentOf(done, total int64) float64 {
	if total <= 0 {
		return 100
	}
	return 100 * float64(done) / float64(total)
}

// eta is the time left for remaining bytes at rate bytes per second, rounded to the second,
// or "--" when it cannot be told.
func eta(remaining int64, rate float64) string {
	if rate <= 0 || remaining <= 0 {
		return "--"
	}
	secs := float64(remaining) / rate
	if secs > 100*24*3600 {
		return "--"
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second).String()
}

// barLine is "[=====     ] text" cut to width columns (one less, so that the cursor never
// wraps to a new line): the bar shrinks first, then the text is cut.
func barLine(text string, done, total int64, width int) string {
	avail := width - 1
	barWidth := min(24, avail-len([]rune(text))-3)
	if barWidth < 5 {
		runes := []rune(text)
		if len(runes) > avail {
			runes = runes[:max(avail, 0)]
		}
		return string(runes)
	}
	filled := int(percentOf(done, total) / 100 * float64(barWidth))
	filled = min(max(filled, 0), barWidth)
	return "[" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "] " + text
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
