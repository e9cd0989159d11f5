package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progressWidth is the number of cells of every progress bar.
const progressWidth = 24

// bar draws done of total as "[#####.......]".
func bar(done, total int) string {
	filled := 0
	if total > 0 {
		filled = max(0, min(progressWidth, done*progressWidth/total))
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", progressWidth-filled) + "]"
}

// progress reports a long loop on w (stderr, so --json output stays
// clean): on a terminal one line redrawn in place, otherwise a plain line at
// most every few seconds, which is what a log file or CI wants.
type progress struct {
	w      io.Writer
	live   bool
	label  string
	total  int
	start  time.Time
	every  time.Duration
	lastAt time.Time
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, live: isTerminal(w), label: label, total: total, start: time.Now(), every: 2 * time.Second}
	if p.live {
		p.every = 100 * time.Millisecond
	}
	return p
}

// update reports done items and errs failures; it prints when the interval
// since its last line has passed, and always when final.
func (p *progress) update(done, errs int, final bool) {
	now := time.Now()
	if !final && now.Sub(p.lastAt) < p.every {
		return
	}
	p.lastAt = now
	el := now.Sub(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el.Seconds()
	}
	eta := "-"
	switch {
	case done >= p.total:
		eta = "0s"
	case rate > 0:
		eta = fmtDuration(time.Duration(float64(p.total-done) / rate * float64(time.Second)))
	}
	pct := 100
	if p.total > 0 {
		pct = done * 100 / p.total
	}
	line := fmt.Sprintf("%s %s %d/%d %3d%%  %.0f/s  ETA %s  errors %d  %s",
		p.label, bar(done, p.total), done, p.total, pct, rate, eta, errs, fmtDuration(el))
	if p.live {
		fmt.Fprint(p.w, "\r\033[K"+line)
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

// fmtDuration rounds d for humans: 850ms, 12.3s, 4m05s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
