package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAnchor writes a shell script standing in for an anchor: it checks its arguments, prints a progress
// line to stdout and to stderr, then one JSON line per batch size (new tok/s = 100 × batch), and exits with
// status code.
func fakeAnchor(t *testing.T, code int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "anchor.sh")
	script := `[ "$1 $2 $3 $4 $5 $6" = "--batches 1,8 --prompt 400 --new 64" ] || { echo "bad args: $*" >&2; exit 3; }
echo "loading the model"
echo "compiling" >&2
echo '{"system": "hf-fake", "gpu": "none", "batch": 1, "new_tok_per_s": 100.0}'
echo '{"system": "hf-fake", "gpu": "none", "batch": 8, "new_tok_per_s": 800.0}'
echo "last words" >&2
exit ` + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// RunAnchor passes the anchor's JSON lines to out and the rest to the log, and Ratios pairs them with t2m's
// results by batch size.
func TestRunAnchorAndRatios(t *testing.T) {
	var out, log bytes.Buffer
	args := []string{"--batches", "1,8", "--prompt", "400", "--new", "64"}
	lines, err := RunAnchor("sh", fakeAnchor(t, 0), args, &out, &log)
	if err != nil {
		t.Fatalf("%v\nlog: %s", err, log.String())
	}
	if len(lines) != 2 || lines[1].System != "hf-fake" || lines[1].Batch != 8 || lines[1].NewTokPS != 800 {
		t.Fatalf("parsed %+v", lines)
	}
	if got := strings.Count(out.String(), "\n"); got != 2 || strings.Contains(out.String(), "loading") {
		t.Errorf("out holds %d lines, want the 2 JSON lines only:\n%s", got, out.String())
	}
	if !strings.Contains(log.String(), "loading the model") || !strings.Contains(log.String(), "compiling") {
		t.Errorf("the anchor's other output is not in the log:\n%s", log.String())
	}
	out.Reset()
	t2m := []GenerateResult{{Batch: 1, NewTokPS: 250}, {Batch: 8, NewTokPS: 2000}, {Batch: 32, NewTokPS: 5000}}
	rs, err := Ratios(t2m, lines, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Value != 2.5 || rs[1].Value != 2.5 || rs[1].Batch != 8 || rs[0].Ratio != "t2m / hf-fake" {
		t.Errorf("ratios %+v", rs)
	}
	if !strings.Contains(out.String(), `{"ratio":"t2m / hf-fake","batch":8,"value":2.5}`) {
		t.Errorf("ratio lines:\n%s", out.String())
	}
}

// A failing anchor, or one that prints no JSON line, is an error naming the script and its last words.
func TestRunAnchorFailures(t *testing.T) {
	var out, log bytes.Buffer
	args := []string{"--batches", "1,8", "--prompt", "400", "--new", "64"}
	if _, err := RunAnchor("sh", fakeAnchor(t, 1), args, &out, &log); err == nil || !strings.Contains(err.Error(), "anchor.sh") ||
		!strings.Contains(err.Error(), "last words") {
		t.Errorf("failing anchor: %v", err)
	}
	if _, err := RunAnchor("sh", fakeAnchor(t, 0), []string{"--batches", "2"}, &out, &log); err == nil || !strings.Contains(err.Error(), "bad args") {
		t.Errorf("anchor refusing its arguments: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.sh")
	if err := os.WriteFile(empty, []byte("echo nothing >&2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RunAnchor("sh", empty, nil, &out, &log); err == nil || !strings.Contains(err.Error(), "no JSON line") {
		t.Errorf("anchor without JSON: %v", err)
	}
	if _, err := RunAnchor("/nonexistent/python3", empty, nil, &out, &log); err == nil || !strings.Contains(err.Error(), "installed") {
		t.Errorf("missing interpreter: %v", err)
	}
}
