package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"
)

// runInterrupted runs args, sends the process a SIGINT once a line containing want is written (holding
// that line until the handler has said "interrupted:"), and returns the command's error and output.
func runInterrupted(t *testing.T, want string, args ...string) (error, string) {
	t.Helper()
	exiter := cli.OsExiter
	cli.OsExiter = func(int) {}
	defer func() { cli.OsExiter = exiter }()
	w := &lineWatcher{want: want, release: "interrupted: stopping generation", seen: make(chan struct{}), released: make(chan struct{})}
	app := newApp()
	app.Writer, app.ErrWriter = w, w
	errc := make(chan error, 1)
	go func() { errc <- app.Run(append([]string{"t2m"}, args...)) }()
	select {
	case <-w.seen:
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		return <-errc, w.String()
	case err := <-errc:
		t.Fatalf("%v ended before the signal: %v\n%s", args, err, w.String())
	}
	return nil, ""
}

// A real SIGINT during `t2m baseline` stops generation with exit status 130 and a message, leaving no
// report of the unfinished split: none in a new run folder, the previous complete files (byte for byte)
// when overwriting one.
func TestBaselineSIGINTLeavesNoHalfReport(t *testing.T) {
	dir := t.TempDir()
	dataDir, runs := filepath.Join(dir, "data"), filepath.Join(dir, "runs")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dataDir)
	args := []string{"baseline", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--max-len", "1024",
		"--max-new-tokens", "2", "--generation-batch", "1"}
	runDir := filepath.Join(runs, "tiny_baseline")
	check := func(err error, out, split string) {
		t.Helper()
		var exit cli.ExitCoder
		if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(err.Error(), "interrupted while generating "+split) {
			t.Fatalf("after SIGINT: %v, want exit status 130 naming %s\n%s", err, split, out)
		}
		if !strings.Contains(out, "interrupted: stopping generation before its next step") {
			t.Errorf("no interrupt message:\n%s", out)
		}
		if tmp, _ := filepath.Glob(filepath.Join(runDir, ".*tmp*")); len(tmp) != 0 {
			t.Errorf("half-written files left: %v", tmp)
		}
	}
	// A new run interrupted after eval's first batch: no report, no predictions.
	err, out := runInterrupted(t, "generating eval: 1/2 prompts", args...)
	check(err, out, "eval")
	if files, _ := filepath.Glob(filepath.Join(runDir, "*_*")); len(files) != 0 {
		t.Errorf("interrupted new run left %v", files)
	}
	// A complete run, then an interrupted --overwrite: every file is the previous one, byte for byte.
	if msg, err := runApp(t, args...); err != nil {
		t.Fatalf("baseline: %v\n%s", err, msg)
	}
	before := map[string]string{}
	for _, f := range []string{"eval_report.json", "eval_predictions.jsonl", "held_out_report.json", "held_out_predictions.jsonl"} {
		b, err := os.ReadFile(filepath.Join(runDir, f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = string(b)
	}
	err, out = runInterrupted(t, "generating eval: 1/2 prompts", append(args, "--overwrite")...)
	check(err, out, "eval")
	for f, b := range before {
		if after, _ := os.ReadFile(filepath.Join(runDir, f)); string(after) != b {
			t.Errorf("%s changed by the interrupted run", f)
		}
	}
}
