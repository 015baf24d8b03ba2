package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// AnchorLine is what the comparison needs of one JSON line of an anchor script (../shared/bench/*.py):
// its system, batch size and new tokens per second; the whole line is passed on as printed.
type AnchorLine struct {
	System   string  `json:"system"`
	Batch    int     `json:"batch"`
	NewTokPS float64 `json:"new_tok_per_s"`
}

// RunAnchor runs an anchor script (python3 script args...) in the same call as t2m's measurement, copies
// its JSON lines to out as they come and its other output to log, and returns the JSON lines parsed. An
// anchor that fails, or prints no JSON line, is an error naming the script and its last output.
func RunAnchor(python, script string, args []string, out, log io.Writer) ([]AnchorLine, error) {
	cmd := exec.Command(python, append([]string{script}, args...)...)
	var tail bytes.Buffer // the last lines of its stderr, for the error
	cmd.Stderr = io.MultiWriter(log, &tail)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: anchor %s: %w", script, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: anchor %s: %w (is %s installed?)", script, err, python)
	}
	var lines []AnchorLine
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		var l AnchorLine
		if strings.HasPrefix(text, "{") && json.Unmarshal([]byte(text), &l) == nil {
			lines = append(lines, l)
			fmt.Fprintln(out, text)
			continue
		}
		fmt.Fprintln(log, text)
	}
	if err := cmd.Wait(); err != nil {
		return lines, fmt.Errorf("bench: anchor %s %s: %w; its last output: %s", script, strings.Join(args, " "), err, lastLine(tail.String()))
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("bench: anchor %s printed no JSON line; its last output: %s", script, lastLine(tail.String()))
	}
	return lines, nil
}

// lastLine is the last non-empty line of s ("(none)" without one).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return "(none)"
}

// Ratio is one batch size's comparison, printed as a JSON line after the anchors'.
type Ratio struct {
	Ratio string  `json:"ratio"` // "t2m / <anchor system>"
	Batch int     `json:"batch"`
	Value float64 `json:"value"` // t2m's new tok/s ÷ the anchor's
}

// Ratios pairs t2m's results with an anchor's lines by batch size and prints one Ratio line per pair to out.
func Ratios(t2m []GenerateResult, anchor []AnchorLine, out io.Writer) ([]Ratio, error) {
	var rs []Ratio
	for _, a := range anchor {
		for _, r := range t2m {
			if r.Batch != a.Batch || !(a.NewTokPS > 0) {
				continue
			}
			x := Ratio{Ratio: "t2m / " + a.System, Batch: a.Batch, Value: float64(int64(r.NewTokPS/a.NewTokPS*100+0.5)) / 100}
			if err := printJSON(out, x); err != nil {
				return rs, err
			}
			rs = append(rs, x)
		}
	}
	return rs, nil
}
