package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/pipeline"
)

// train's --eval-every, --eval-subset, --max-new-tokens, --early-stopping and --early-stopping-metric
// reach the run: its training_config.json records them and each evaluation, metrics.jsonl has the rates,
// and curves.png is drawn.
func TestTrainEvalEveryFlags(t *testing.T) {
	dataDir, runs := newDataDir(t), filepath.Join(t.TempDir(), "runs")
	out, err := runApp(t, quickTrain(dataDir, runs, "--max-len", "1024", "--eval-every", "1", "--eval-subset", "1",
		"--max-new-tokens", "2", "--early-stopping", "3", "--early-stopping-metric", "eval_syntax")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	runDir := filepath.Join(runs, "tiny_r8")
	raw, err := os.ReadFile(filepath.Join(runDir, pipeline.TrainConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Signal *pipeline.SignalRecord `json:"signal"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	s := rec.Signal
	if s == nil || s.EvalEvery != 1 || s.EvalSubset != 1 || s.MaxNewTokens != 2 || s.EarlyStopping != 3 ||
		s.EarlyStoppingMetric != "eval_syntax" || s.BestStep != 1 || s.BestValue == nil || len(s.Evaluations) != 1 {
		t.Errorf("signal record %+v\n%s", s, raw)
	}
	metrics, err := os.ReadFile(filepath.Join(runDir, "metrics.jsonl"))
	if err != nil || !strings.Contains(string(metrics), `"rates":{"eval_fields":`) {
		t.Errorf("metrics.jsonl: %v\n%s", err, metrics)
	}
	for _, want := range []string{"generating eval (update 1): 1/1 prompts", "evaluation after update 1 (", "curves: " + filepath.Join(runDir, "curves.png")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if st, err := os.Stat(filepath.Join(runDir, "curves.png")); err != nil || st.Size() == 0 {
		t.Errorf("curves.png: %v", err)
	}
}

// Negative counts, an unknown or empty metric and early stopping without evaluations are refused naming
// the flag and what it accepts; nothing is written.
func TestTrainEvalEveryBadFlags(t *testing.T) {
	dataDir := newDataDir(t)
	metrics := "eval_syntax, eval_operators, eval_fields, eval_overall, held_out_syntax, held_out_operators, held_out_fields, held_out_overall"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--eval-every", "-1"}, "--eval-every -1 must be ≥ 0"},
		{[]string{"--eval-every", "1", "--eval-subset", "-2"}, "--eval-subset -2 must be ≥ 0"},
		{[]string{"--eval-every", "1", "--eval-subset", "0"}, "--eval-subset 0 must be ≥ 1 with --eval-every"},
		{[]string{"--eval-every", "1", "--max-new-tokens", "-1"}, "--max-new-tokens -1 must be ≥ 0"},
		{[]string{"--eval-every", "1", "--early-stopping", "-1"}, "--early-stopping -1 must be ≥ 0"},
		{[]string{"--early-stopping", "2"}, "--early-stopping 2 needs --eval-every N > 0"},
		{[]string{"--eval-every", "1", "--early-stopping", "2", "--early-stopping-metric", "overall"}, `--early-stopping-metric "overall" is not one of ` + metrics},
		{[]string{"--early-stopping-metric", ""}, `--early-stopping-metric "" is not one of ` + metrics},
	} {
		runs := filepath.Join(t.TempDir(), "runs")
		out, err := runApp(t, quickTrain(dataDir, runs, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q\n%s", tc.args, err, tc.want, out)
		}
		if _, err := os.Stat(runs); !os.IsNotExist(err) {
			t.Errorf("%v: %s was written", tc.args, runs)
		}
	}
}
