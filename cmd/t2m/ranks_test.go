package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestGPUsFlagRefusals: --gpus is refused, before anything is loaded or written, where a data-parallel run
// cannot happen: a count below 1, the CPU, this CPU-only binary, and a launcher's environment that says
// otherwise or lacks the rendezvous address.
func TestGPUsFlagRefusals(t *testing.T) {
	data := hostileData(t)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{args: []string{"--gpus", "0"}, want: []string{"--gpus 0 must be ≥ 1"}},
		{args: []string{"--gpus", "2", "--device", "cpu"}, want: []string{"--gpus 2 needs --device cuda", "not --device cpu"}},
		{args: []string{"--gpus", "2"}, want: []string{"--gpus 2: this binary was built without CUDA", "make build-cuda"}},
		{args: []string{"--gpus", "3"}, env: map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
			want: []string{"--gpus 3, but the environment says this process is rank 0 of WORLD_SIZE 2", "leave --gpus out"}},
		{env: map[string]string{"RANK": "1", "WORLD_SIZE": "2"}, want: []string{"MASTER_ADDR"}},
		{env: map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
			want: []string{"this binary was built without CUDA"}},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		for _, cmd := range []string{"train", "baseline"} {
			runs := t.TempDir()
			args := append(trainArgs(data, runs), c.args...)
			if cmd == "baseline" {
				args = append([]string{"baseline", "--model", "tiny", "--data-dir", data, "--output-dir", runs, "--run-name", "r"}, c.args...)
			}
			msg, err := runApp(t, args...)
			wantErr(t, cmd+" "+strings.Join(c.args, " ")+" "+strings.Join(envList(c.env), " "), msg, err, c.want...)
			noFile(t, filepath.Join(runs, "r"))
		}
		for k := range c.env {
			t.Setenv(k, "")
		}
	}
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// TestMain lets this test binary stand in for the ranks launchRanks starts (it starts os.Executable()): with
// T2M_TEST_FAKE_RANK set, the process is a fake rank that behaves as the variable says.
func TestMain(m *testing.M) {
	if mode := os.Getenv("T2M_TEST_FAKE_RANK"); mode != "" {
		os.Exit(fakeRank(mode))
	}
	os.Exit(m.Run())
}

// fakeRank is one rank of a launched run: "ok" says who it is and ends; "fail" makes rank 1 fail while
// rank 0 would wait forever (as it would in its next all-reduce); "interrupt" waits for SIGINT and ends
// with status 130, as an interrupted t2m does.
func fakeRank(mode string) int {
	rank := os.Getenv("RANK")
	switch mode {
	case "ok":
		fmt.Printf("rank %s of %s, local rank %s, rendezvous %s:%s\n", rank, os.Getenv("WORLD_SIZE"), os.Getenv("LOCAL_RANK"),
			os.Getenv("MASTER_ADDR"), os.Getenv("MASTER_PORT"))
		return 0
	case "fail":
		if rank == "1" {
			time.Sleep(200 * time.Millisecond)
			fmt.Fprintln(os.Stderr, "t2m: train: the GPU fell off the bus")
			return 3
		}
		time.Sleep(time.Minute)
		return 0
	case "interrupt":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		fmt.Printf("rank %s ready\n", rank)
		select {
		case <-sig:
			fmt.Printf("rank %s interrupted\n", rank)
			return 130
		case <-time.After(time.Minute):
			return 0
		}
	}
	return 2
}

// syncBuffer is a bytes.Buffer safe for the launcher's copying goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func launch(t *testing.T, mode string, n int, during func(out *syncBuffer)) (string, error, time.Duration) {
	t.Helper()
	t.Setenv("T2M_TEST_FAKE_RANK", mode)
	out := &syncBuffer{}
	app := &cli.App{Writer: out, ErrWriter: out}
	c := cli.NewContext(app, nil, nil)
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- launchRanks(c, n) }()
	if during != nil {
		during(out)
	}
	err := <-errc
	return out.String(), err, time.Since(start)
}

func TestLaunchRanksEnvironment(t *testing.T) {
	out, err, _ := launch(t, "ok", 3, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	port := regexp.MustCompile(`rank 0 of 3, local rank 0, rendezvous 127\.0\.0\.1:(\d+)\n`).FindStringSubmatch(out)
	if port == nil {
		t.Fatalf("rank 0's line missing or wrong:\n%s", out)
	}
	for _, want := range []string{"[rank 1] rank 1 of 3, local rank 1, rendezvous 127.0.0.1:" + port[1],
		"[rank 2] rank 2 of 3, local rank 2, rendezvous 127.0.0.1:" + port[1]} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A rank that fails makes the launcher stop the others at once (they would wait for it forever) and say
// which rank failed, with its status.
func TestLaunchRanksFailedRankStopsTheOthers(t *testing.T) {
	out, err, took := launch(t, "fail", 2, nil)
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 3 || !strings.Contains(err.Error(), "rank 1 of 2 failed (exit status 3") ||
		!strings.Contains(err.Error(), "checkpoint on disk is intact") {
		t.Fatalf("error %v, want rank 1's failure with its status 3\n%s", err, out)
	}
	if !strings.Contains(out, "[rank 1] t2m: train: the GPU fell off the bus") {
		t.Errorf("rank 1's error is not shown:\n%s", out)
	}
	if took > 20*time.Second {
		t.Errorf("took %v: rank 0 was not stopped", took)
	}
}

// An interrupt of the launcher reaches every rank once; they end with 130 and so does the launcher.
func TestLaunchRanksPassesInterrupts(t *testing.T) {
	out, err, _ := launch(t, "interrupt", 2, func(out *syncBuffer) {
		deadline := time.Now().Add(30 * time.Second)
		for !(strings.Contains(out.String(), "rank 0 ready") && strings.Contains(out.String(), "[rank 1] rank 1 ready")) {
			if time.Now().After(deadline) {
				t.Errorf("ranks not ready:\n%s", out.String())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Error(err)
		}
	})
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 130 {
		t.Fatalf("error %v, want exit status 130\n%s", err, out)
	}
	for _, want := range []string{"rank 0 interrupted", "[rank 1] rank 1 interrupted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
