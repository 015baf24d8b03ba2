package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// lineWatcher is an io.Writer that closes seen once a line containing want has been written, and then holds
// that write (the training loop's progress line) until a line containing release arrives from another
// goroutine (the interrupt handler's), so the run cannot finish between the two whatever the step time.
type lineWatcher struct {
	mu            sync.Mutex
	buf           bytes.Buffer
	want, release string
	seen          chan struct{}
	released      chan struct{}
	once, relOnce sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	all := w.buf.String()
	w.mu.Unlock()
	if strings.Contains(all, w.release) {
		w.relOnce.Do(func() { close(w.released) })
	}
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.seen) })
		select {
		case <-w.released:
		case <-time.After(time.Minute):
		}
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A real SIGINT during `t2m train` saves a checkpoint and exits with status 130; --resume then finishes
// the run.
func TestTrainSIGINTCheckpointsAndResumes(t *testing.T) {
	dir := t.TempDir()
	dataDir, runs := filepath.Join(dir, "data"), filepath.Join(dir, "runs")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dataDir)
	args := []string{"t2m", "train", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--max-len", "1024",
		"--epochs", "2", "--batch-size", "1", "--grad-accum", "1", "--lora-r", "2", "--save-every", "0"}
	// urfave/cli exits the process on an ExitCoder; keep the test process alive.
	exiter := cli.OsExiter
	cli.OsExiter = func(int) {}
	defer func() { cli.OsExiter = exiter }()
	w := &lineWatcher{want: "step 1/4", release: "interrupted: saving", seen: make(chan struct{}), released: make(chan struct{})}
	app := newApp()
	app.Writer, app.ErrWriter = w, w
	errc := make(chan error, 1)
	go func() { errc <- app.Run(args) }()
	var err error
	select {
	case <-w.seen:
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err = <-errc
	case err = <-errc:
		t.Fatalf("train ended before the signal: %v\n%s", err, w.String())
	}
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("after SIGINT: err %v, want exit status 130 naming --resume\n%s", err, w.String())
	}
	if !strings.Contains(w.String(), "interrupted: saving a checkpoint") {
		t.Errorf("no interrupt message:\n%s", w.String())
	}
	runDir := filepath.Join(runs, "tiny_r2")
	if _, err := os.Stat(filepath.Join(runDir, "checkpoint", "state.json")); err != nil {
		t.Fatalf("no checkpoint after SIGINT: %v", err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(runDir, ".*tmp*")); len(tmp) != 0 {
		t.Errorf("half-written files left: %v", tmp)
	}
	msg, err := runApp(t, append(args[1:], "--resume")...)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, msg)
	}
	if !strings.Contains(msg, "resuming from") || !strings.Contains(msg, "step 4/4") {
		t.Errorf("resumed run output:\n%s", msg)
	}
}
