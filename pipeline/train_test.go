package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/train"
)

// Train and Evaluate called as a library on the built-in tiny model (CPU): a run stopped before its first
// update leaves a checkpoint and an *Interrupted error, Resume finishes it, the record file holds the
// result, and Evaluate applies the trained adapter.
func TestTrainStopResumeEvaluate(t *testing.T) {
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	var log bytes.Buffer
	opts := TrainOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cpu"}, DataDir: dataDir, OutputDir: runs,
		Rank: 2, Epochs: 1, BatchSize: 1, GradAccum: 1, LR: 1e-2, MaxLen: 1024, Seed: 42, Log: &log,
		CommandLine: []string{"t2m", "train", "--model", "tiny"}}
	stopNow := opts
	watched, released := false, false
	stopNow.WatchInterrupts = func() (<-chan struct{}, func()) {
		watched = true
		stop := make(chan struct{})
		close(stop)
		return stop, func() { released = true }
	}
	_, err := Train(stopNow)
	var stopped *Interrupted
	if !errors.As(err, &stopped) || !errors.Is(err, train.ErrInterrupted) || !watched || !released {
		t.Fatalf("stopped run: err %v (watched %v, released %v)\n%s", err, watched, released, log.String())
	}
	if want := filepath.Join(runs, "tiny_r2", "checkpoint"); stopped.CheckpointDir != want {
		t.Errorf("checkpoint in %s, want %s", stopped.CheckpointDir, want)
	}
	if _, err := Train(opts); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("a second run over the checkpoint: %v, want a pointer to --resume", err)
	}
	opts.Resume = true
	res, err := Train(opts)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, log.String())
	}
	if res.RunName != "tiny_r2" || res.Steps != 2 || res.Device != "cpu" || res.AdapterDir != filepath.Join(runs, "tiny_r2", "adapter") {
		t.Errorf("result %+v", res)
	}
	raw, err := os.ReadFile(filepath.Join(res.Dir, TrainConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil || rec["run_name"] != "tiny_r2" || rec["updates"] != 2.0 ||
		rec["effective_batch_size"] != 1.0 || rec["provenance"] == nil || len(rec) != 14 {
		t.Errorf("%s: %v\n%s", TrainConfigFile, err, raw)
	}
	if p, _ := rec["provenance"].(map[string]any); p == nil || fmt.Sprint(p["command"]) != "[t2m train --model tiny]" {
		t.Errorf("%s: provenance command %v, want TrainOptions.CommandLine", TrainConfigFile, rec["provenance"])
	}
	for _, want := range []string{"train: 2 examples, 2 kept", "run tiny_r2: model tiny (none), LoRA r=2 alpha=4", "resuming from"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}

	ev, err := Evaluate(EvalOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cpu"}, Adapter: res.AdapterDir,
		DataDir: dataDir, OutputDir: runs, Limit: 1, MaxLen: 1024, MaxNewTokens: 2})
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if ev.RunName != "tiny_r2" || len(ev.Splits) != 2 || ev.Splits[1].Report.Total != 1 {
		t.Errorf("evaluation %+v", ev)
	}
}

func TestTrainBadOptions(t *testing.T) {
	dataDir := writeSplits(t)
	base := TrainOptions{ModelOptions: ModelOptions{Model: "tiny"}, DataDir: dataDir, OutputDir: t.TempDir(), Rank: 2,
		Epochs: 1, BatchSize: 1, GradAccum: 1, LR: 1e-3, MaxLen: 1024}
	for _, tc := range []struct {
		edit func(*TrainOptions)
		want string
	}{
		{func(o *TrainOptions) { o.Rank = 0 }, "train: --lora-r 0 must be positive"},
		{func(o *TrainOptions) { o.RunName = "a/b" }, "train: run name"},
		{func(o *TrainOptions) { o.DataDir = t.TempDir() }, "train: train split"},
		{func(o *TrainOptions) { o.Quantize = "int3" }, "train: --quantize \"int3\""},
		{func(o *TrainOptions) { o.Model = "qwen2.5-coder-7b" }, "no built-in weights"},
		{func(o *TrainOptions) { o.Resume = true }, "no checkpoint"},
	} {
		o := base
		tc.edit(&o)
		if _, err := Train(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want it to contain %q", err, tc.want)
		}
	}
}
