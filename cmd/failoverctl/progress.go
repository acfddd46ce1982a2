package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows how far a drain or a verify has got, in keys and bytes:
// on a terminal a bar redrawn in place (count, keys a second, elapsed time
// and ETA, with the bytes in its description); otherwise a plain line at
// most every lineEvery and one at the end, for logs and scripts. Its
// methods are safe for concurrent use.
type progress struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar // nil: plain lines

	verb       string
	showBytes  bool
	start      time.Time
	lastLine   time.Time
	unshown    bool  // the last change is not in a printed line
	total      int64 // keys to do; negative when unknown
	totalBytes int64 // bytes to do; negative when unknown
	keys       int64
	bytes      int64
	note       string // what else to show, such as "3 differing"
}

// lineEvery is how often a plain progress line is printed at most.
const lineEvery = time.Second

// newProgress starts a display of verb's progress over total keys and
// totalBytes bytes (negative when unknown) on e.stdout, showing the bytes
// done if showBytes.
func newProgress(e *env, verb string, total, totalBytes int64, showBytes bool) *progress {
	p := &progress{w: e.stdout, verb: verb, showBytes: showBytes, start: time.Now(), total: total, totalBytes: totalBytes}
	if e.tty {
		max := total
		if max <= 0 {
			max = -1 // a spinner: the bar cannot show "0 of 0"
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(e.stdout),
			progressbar.OptionSetDescription(p.describe()),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("keys"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return p
}

// add counts keys and bytes done.
func (p *progress) add(keys, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(p.keys+keys, p.bytes+bytes, p.note)
}

// set says how many keys and bytes are done so far, with a note.
func (p *progress) set(keys, bytes int64, note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(keys, bytes, note)
}

func (p *progress) setLocked(keys, bytes int64, note string) {
	p.keys, p.bytes, p.note = keys, bytes, note
	if p.total >= 0 && p.keys > p.total {
		// Work recorded since the count (by another instance, say).
		p.total = p.keys
		if p.bar != nil {
			p.bar.ChangeMax64(p.total)
		}
	}
	if p.bar != nil {
		p.bar.Describe(p.describe())
		_ = p.bar.Set64(p.keys)
		return
	}
	p.unshown = true
	if time.Since(p.lastLine) >= lineEvery {
		p.printLineLocked()
	}
}

// finish ends the display: the bar is left as it stands, or a last line
// printed.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		if p.unshown || p.lastLine.IsZero() {
			p.printLineLocked()
		}
		return
	}
	if p.total >= 0 && p.keys < p.total {
		_ = p.bar.Exit() // not done: a full bar would say it was
	} else {
		_ = p.bar.Finish() // also stops a spinner's redraws
	}
	fmt.Fprintln(p.w)
}

func (p *progress) printLineLocked() {
	p.lastLine, p.unshown = time.Now(), false
	fmt.Fprintln(p.w, p.line(time.Since(p.start)))
}

// line is the plain progress line after elapsed, such as
//
//	drain: 40/100 keys, 4.0 MiB/10.0 MiB, 60 left, 20 keys/s, 2.0 MiB/s, ETA 3s
func (p *progress) line(elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d", p.verb, p.keys)
	if p.total >= 0 {
		fmt.Fprintf(&b, "/%d", p.total)
	}
	b.WriteString(" keys")
	if p.showBytes {
		b.WriteString(", " + p.bytesDone())
	}
	if p.note != "" {
		b.WriteString(", " + p.note)
	}
	if p.total >= 0 {
		fmt.Fprintf(&b, ", %d left", p.total-p.keys)
	}
	secs := elapsed.Seconds()
	if secs > 0 {
		rate := float64(p.keys) / secs
		fmt.Fprintf(&b, ", %s keys/s", formatRate(rate))
		if p.showBytes {
			fmt.Fprintf(&b, ", %s/s", formatBytes(int64(float64(p.bytes)/secs)))
		}
		if p.total > p.keys && rate > 0 {
			eta := time.Duration(float64(p.total-p.keys) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", ETA %s", roundDuration(eta))
		}
	}
	return b.String()
}

// describe is the bar's description: the verb, the bytes and their rate,
// and the note.
func (p *progress) describe() string {
	d := p.verb
	if p.showBytes {
		d += " " + p.bytesDone()
		if secs := time.Since(p.start).Seconds(); secs > 0 && p.bytes > 0 {
			d += " (" + formatBytes(int64(float64(p.bytes)/secs)) + "/s)"
		}
	}
	if p.note != "" {
		d += ", " + p.note
	}
	return d
}

// bytesDone is the bytes done, and of how many when known.
func (p *progress) bytesDone() string {
	if p.totalBytes >= 0 {
		return formatBytes(p.bytes) + "/" + formatBytes(p.totalBytes)
	}
	return formatBytes(p.bytes)
}

// formatRate writes a rate with a decimal below 10 only.
func formatRate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

// formatBytes writes n in IEC units: 512 B, 1.5 KiB, 3.0 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// roundDuration rounds d for people: to the second past ten seconds, to
// the tenth of a second past one, to the millisecond past one, and to the
// microsecond below.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}
