package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// pollInterval is how often a growing file is re-read while waiting for a
// line. Waits end on the line (or a failure), not on the interval.
const pollInterval = 100 * time.Millisecond

// errGone reports that the process writing a watched file has exited.
var errGone = errors.New("process exited")

// logFile is a file another process appends to: a serial console or the
// server's log.
type logFile struct {
	path string
	// alive reports whether the writer still runs; nil means always.
	alive func() bool
}

// read returns the file's content from offset on.
func (f *logFile) read(from int64) ([]byte, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer fh.Close()
	if _, err := fh.Seek(from, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(fh)
}

// size returns the current length of the file (0 when missing).
func (f *logFile) size() int64 {
	st, err := os.Stat(f.path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// match is a line matcher: a regular expression and what it means.
type match struct {
	re   *regexp.Regexp
	what string
}

// wait reads the file from offset until a line matches want (it returns
// the offset just past that line and the line), a line matches one of
// fail (an error naming it), the writer exits, or ctx ends.
func (f *logFile) wait(ctx context.Context, from int64, want *regexp.Regexp, fail []match, check func() error) (int64, string, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	pos := from
	for {
		b, err := f.read(pos)
		if err != nil {
			return pos, "", fmt.Errorf("read %s: %w", f.path, err)
		}
		// Only whole lines: the writer may be in the middle of one.
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			for _, raw := range bytes.SplitAfter(b[:i+1], []byte("\n")) {
				if len(raw) == 0 {
					continue
				}
				line := cleanLine(raw)
				pos += int64(len(raw))
				if want != nil && want.MatchString(line) {
					return pos, line, nil
				}
				for _, m := range fail {
					if m.re.MatchString(line) {
						return pos, line, fmt.Errorf("%s: %q", m.what, line)
					}
				}
			}
		}
		if check != nil {
			if err := check(); err != nil {
				return pos, "", err
			}
		}
		if f.alive != nil && !f.alive() {
			return pos, "", errGone
		}
		select {
		case <-ctx.Done():
			return pos, "", ctx.Err()
		case <-t.C:
		}
	}
}

// cleanLine strips the line ending and the terminal escapes firmware
// consoles write (SeaBIOS, iPXE and OVMF clear and position the screen).
func cleanLine(b []byte) string {
	s := ansi.ReplaceAllString(string(b), "")
	s = strings.TrimRight(s, "\r\n")
	return strings.Map(func(r rune) rune {
		if r == '\r' {
			return ' '
		}
		if r < 0x20 && r != '\t' {
			return -1
		}
		return r
	}, s)
}

var ansi = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_])`)

// tail returns the last n lines of the file, cleaned, or a note why not.
func (f *logFile) tail(n int) string {
	b, err := f.read(0)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", f.path, err)
	}
	if len(b) == 0 {
		return fmt.Sprintf("(%s is empty)", f.path)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(cleanLine(l))
		sb.WriteByte('\n')
	}
	return sb.String()
}
