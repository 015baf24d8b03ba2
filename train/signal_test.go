package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
)

// scripted is an Evaluate that returns, after update s, {"score": values[s], "other": 1} (0 for a step
// not in values), checks that it is handed the run's live LoRA values, and keeps a copy of the
// parameters at each evaluated step.
type scripted struct {
	t      *testing.T
	run    *Run
	values map[int]float64
	steps  []int
	params map[int][][]float32
}

func (s *scripted) evaluate(step int, lp *model.LoRAParams) (map[string]float64, error) {
	if lp != s.run.Params.LoRA {
		s.t.Errorf("update %d: Evaluate got another LoRAParams than the run's", step)
	}
	s.steps = append(s.steps, step)
	if s.params == nil {
		s.params = map[int][][]float32{}
	}
	s.params[step] = copyParams(s.run.Params)
	return map[string]float64{"score": s.values[step], "other": 1}, nil
}

// signalRun is newTestRun (the 6-update plan of testFingerprint on 12 sequences) with a scripted evaluation.
func signalRun(t *testing.T, dir string, every, patience int, values map[int]float64) (*Run, *scripted) {
	t.Helper()
	train, eval := randomSeqs(12, smallConfig().VocabSize, 1), randomSeqs(3, smallConfig().VocabSize, 2)
	r := newTestRun(t, dir, testFingerprint(), train, eval)
	s := &scripted{t: t, run: r, values: values}
	r.EvalEvery, r.Evaluate, r.EarlyStopping, r.EarlyStoppingMetric = every, s.evaluate, patience, "score"
	return r, s
}

func sameParams(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("%s: parameter %d[%d] = %v, want %v", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

func adapterBytes(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "adapter", lora.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rateLines are the steps of metrics.jsonl's evaluation lines.
func rateLines(t *testing.T, dir string) []int {
	t.Helper()
	ms, err := ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, m := range ms {
		if m.Rates != nil {
			steps = append(steps, m.Step)
			if m.Rates["other"] != 1 {
				t.Errorf("update %d: rates %v lack other=1", m.Step, m.Rates)
			}
		}
	}
	return steps
}

// Evaluations every N updates are logged to metrics.jsonl and the progress output, and change nothing of
// the training: the parameters and the adapter (the best eval loss's) are bitwise those of a run without.
func TestEvalEveryLeavesTrainingAlone(t *testing.T) {
	plainDir := t.TempDir()
	plain, _ := signalRun(t, plainDir, 0, 0, nil)
	if _, err := plain.Train(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r, s := signalRun(t, dir, 2, 0, map[int]float64{2: 0.5})
	res, err := r.Train()
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 || fmt.Sprint(s.steps) != "[2 4 6]" {
		t.Errorf("%d updates, evaluations after %v; want 6 and [2 4 6]", res.Steps, s.steps)
	}
	sameParams(t, "with --eval-every 2", copyParams(r.Params), copyParams(plain.Params))
	if !bytes.Equal(adapterBytes(t, dir), adapterBytes(t, plainDir)) {
		t.Error("the adapter of a run with --eval-every differs from the one without")
	}
	if got := rateLines(t, dir); fmt.Sprint(got) != "[2 4 6]" {
		t.Errorf("metrics.jsonl has rates after updates %v, want [2 4 6]", got)
	}
	log := r.Log.(*bytes.Buffer).String()
	for _, want := range []string{"evaluation after update 2 (", "other 1.0000, score 0.5000", "eval loss: 2/2 micro-batches", "ETA"} {
		if !strings.Contains(log, want) {
			t.Errorf("progress output lacks %q:\n%s", want, log)
		}
	}
}

// esValues: best 0.5 after update 2, a tie after 3 and a drop after 4: with patience 2 the run stops after
// update 4 and keeps update 2's adapter.
var esValues = map[int]float64{1: 0.1, 2: 0.5, 3: 0.5, 4: 0.4, 5: 0.9, 6: 0.9}

func checkStoppedRun(t *testing.T, dir string, res *Result, bestParams [][]float32, r *Run) {
	t.Helper()
	want := EarlyStopState{EvalEvery: 1, Patience: 2, Metric: "score", Best: 0.5, BestStep: 2, Bad: 2, Stopped: true}
	if res.Steps != 4 || res.EarlyStop != want {
		t.Errorf("result: %d updates, early stop %+v; want 4 and %+v", res.Steps, res.EarlyStop, want)
	}
	// The adapter folder holds update 2's values, the checkpoint update 4's (the last state).
	ad, err := lora.Load(filepath.Join(dir, "adapter"), smallConfig().LoRADims())
	if err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, "adapter folder vs update 2", NewParams(lp).Values, bestParams)
	p := NewParams(lp)
	st, err := LoadCheckpoint(filepath.Join(dir, "checkpoint"), p, NewAdamW(p.Sizes(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 4 || st.EarlyStop != want {
		t.Errorf("checkpoint at update %d with %+v; want 4 and %+v", st.Step, st.EarlyStop, want)
	}
	sameParams(t, "checkpoint vs the run's last state", p.Values, copyParams(r.Params))
}

// --early-stopping K stops after K evaluations without improvement (a tie is none), keeps the best
// evaluation's adapter and checkpoints the last state.
func TestEarlyStoppingKeepsBest(t *testing.T) {
	dir := t.TempDir()
	r, s := signalRun(t, dir, 1, 2, esValues)
	res, err := r.Train()
	if err != nil {
		t.Fatal(err)
	}
	checkStoppedRun(t, dir, res, s.params[2], r)
	if got := rateLines(t, dir); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("rates after updates %v, want [1 2 3 4]", got)
	}
	log := r.Log.(*bytes.Buffer).String()
	for _, want := range []string{"early stopping: score 0.5000, no improvement on 0.5000 (update 2): 1 of --early-stopping 2",
		"early stopping after update 4"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// Resuming a run that stopped early trains no further.
	again, _ := signalRun(t, dir, 1, 2, esValues)
	again.Resume = true
	if res, err := again.Train(); err != nil || res.Steps != 4 || !res.EarlyStop.Stopped {
		t.Errorf("resuming a stopped run: %v, %+v", err, res)
	}
}

// An interrupted run resumes with its early-stopping state (best value and update, evaluations without
// improvement) from the checkpoint and stops where the uninterrupted run stops, with its adapter; other
// early-stopping settings are refused on resume.
func TestEarlyStoppingResumes(t *testing.T) {
	straightDir := t.TempDir()
	straight, _ := signalRun(t, straightDir, 1, 2, esValues)
	if _, err := straight.Train(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first, s := signalRun(t, dir, 1, 2, esValues)
	first.MaxSteps = 3
	if res, err := first.Train(); err != nil || res.Steps != 3 {
		t.Fatalf("first part: %v, %+v", err, res)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint", checkpointState))
	if err != nil {
		t.Fatal(err)
	}
	var saved State
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if want := (EarlyStopState{EvalEvery: 1, Patience: 2, Metric: "score", Best: 0.5, BestStep: 2, Bad: 1}); saved.EarlyStop != want {
		t.Errorf("checkpoint's early stopping %+v, want %+v", saved.EarlyStop, want)
	}
	for _, edit := range []func(*Run){func(r *Run) { r.EarlyStopping = 3 }, func(r *Run) { r.EarlyStoppingMetric = "other" },
		func(r *Run) { r.EvalEvery = 2 }, func(r *Run) { r.EarlyStopping = 0 }} {
		bad, _ := signalRun(t, dir, 1, 2, esValues)
		bad.Resume = true
		edit(bad)
		if _, err := bad.Train(); err == nil || !strings.Contains(err.Error(), "same early stopping") {
			t.Errorf("resume with other early stopping: %v", err)
		}
	}
	second, s2 := signalRun(t, dir, 1, 2, esValues)
	second.Resume = true
	res, err := second.Train()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s2.steps) != "[4]" {
		t.Errorf("resumed run evaluated after %v, want [4]", s2.steps)
	}
	checkStoppedRun(t, dir, res, s.params[2], second)
	sameParams(t, "resumed vs straight", copyParams(second.Params), copyParams(straight.Params))
	if !bytes.Equal(adapterBytes(t, dir), adapterBytes(t, straightDir)) {
		t.Error("the resumed run's adapter differs from the uninterrupted run's")
	}
	if got := rateLines(t, dir); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("rates after updates %v, want [1 2 3 4] once each", got)
	}
}

// Bad settings are refused before anything is written, naming the flag.
func TestSignalBadSettings(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Run)
		want string
	}{
		{func(r *Run) { r.EvalEvery = -1 }, "--eval-every -1 must be ≥ 0"},
		{func(r *Run) { r.EarlyStopping = -2 }, "--early-stopping -2 must be ≥ 0"},
		{func(r *Run) { r.EvalEvery = 0 }, "--early-stopping 2 needs --eval-every"},
		{func(r *Run) { r.Evaluate = nil }, "needs an evaluation"},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		r, _ := signalRun(t, dir, 1, 2, esValues)
		tc.edit(r)
		if _, err := r.Train(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q: the run folder was created", tc.want)
		}
	}
	// A metric the evaluation does not return is an error naming the ones it does.
	r, _ := signalRun(t, t.TempDir(), 1, 2, esValues)
	r.EarlyStoppingMetric = "nope"
	if _, err := r.Train(); err == nil || !strings.Contains(err.Error(), `no "nope" (it has other, score)`) {
		t.Errorf("unknown metric: %v", err)
	}
}

// A checkpoint whose early-stopping state is out of range is refused as damaged, naming what is wrong.
func TestEarlyStopDamagedCheckpoint(t *testing.T) {
	dir, p, opt, fp, windows := fuzzCheckpoint(t)
	for _, tc := range []struct {
		es   EarlyStopState
		want string
	}{
		{EarlyStopState{Patience: 2, Bad: 3, BestStep: 1}, "3 evaluations without improvement is outside [0, patience 2]"},
		{EarlyStopState{Patience: 2, BestStep: 9}, "best update 9 is outside [0, 4]"},
		{EarlyStopState{Patience: 2, Stopped: true}, "stopped the run before any evaluation"},
	} {
		st := State{Step: 4, Epoch: 1, Window: 1, Fingerprint: fp, EarlyStop: tc.es}
		if err := SaveCheckpoint(dir, st, p, opt); err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadCheckpoint(dir, p, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := loaded.CheckResume(dir, fp, windows); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.es, err, tc.want)
		}
	}
}
