// Package term holds the terminal output helpers of the command-line tools:
// progress bars and lines redrawn in place on a terminal, plain lines
// elsewhere (a log file or CI), and durations rounded for humans.
package term

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressWidth is the number of cells of every progress bar.
const progressWidth = 24

// Bar draws done of total as "[#####.......]".
func Bar(done, total int) string {
	filled := 0
	if total > 0 {
		filled = max(0, min(progressWidth, done*progressWidth/total))
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", progressWidth-filled) + "]"
}

// Progress reports a long loop on w (stderr, so --json output stays
// clean): on a terminal one line redrawn in place, otherwise a plain line at
// most every few seconds, which is what a log file or CI wants.
type Progress struct {
	w      io.Writer
	live   bool
	label  string
	total  int
	start  time.Time
	every  time.Duration
	lastAt time.Time
}

// NewProgress reports on w a loop of total items.
func NewProgress(w io.Writer, label string, total int) *Progress {
	p := &Progress{w: w, live: IsTerminal(w), label: label, total: total, start: time.Now(), every: 2 * time.Second}
	if p.live {
		p.every = 100 * time.Millisecond
	}
	return p
}

// Update reports done items and errs failures; it prints when the interval
// since its last line has passed, and always when final.
func (p *Progress) Update(done, errs int, final bool) {
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
		eta = FmtDuration(time.Duration(float64(p.total-done) / rate * float64(time.Second)))
	}
	pct := 100
	if p.total > 0 {
		pct = done * 100 / p.total
	}
	line := fmt.Sprintf("%s %s %d/%d %3d%%  %.0f/s  ETA %s  errors %d  %s",
		p.label, Bar(done, p.total), done, p.total, pct, rate, eta, errs, FmtDuration(el))
	if p.live {
		fmt.Fprint(p.w, "\r\033[K"+line)
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

// FmtDuration rounds d for humans: 850ms, 12.3s, 4m05s.
func FmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// IsTerminal reports whether w is a character device (a terminal), where
// live displays redraw one line instead of printing a line every few seconds.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// MS formats milliseconds for humans: "-" for none, "12.3ms", "1.25s".
func MS(v float64) string {
	if v == 0 {
		return "-"
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.1fms", v)
}
