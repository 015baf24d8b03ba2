package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// The training benchmark runs the CPU backend end to end on the tiny model and prints one JSON line whose
// numbers are consistent with each other; a random model's loss is near ln(vocab).
func TestTrainCPU(t *testing.T) {
	var out bytes.Buffer
	r, err := Train(TrainOptions{Shape: Shape{Model: "tiny", Seed: 1}, Device: "cpu", Batch: 2, Seq: 16, GradAccum: 2,
		Rank: 4, LossFrac: 0.5, Warmup: 1, Updates: 2}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var line TrainResult
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if !reflect.DeepEqual(line, *r) {
		t.Errorf("printed %+v, returned %+v", line, *r)
	}
	if r.UpdateS <= 0 || r.MicroS <= 0 || r.MicroS > r.UpdateS {
		t.Errorf("update %g s, micro-batch %g s", r.UpdateS, r.MicroS)
	}
	if want := float64(2*16*2) / r.UpdateS; math.Abs(r.TokPerS-want) > 0.01*want+0.1 {
		t.Errorf("tok/s %g, want %g", r.TokPerS, want)
	}
	// The loss is summed over the window's micro-batches, each normalized by the window's tokens.
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if lnV := math.Log(float64(reg.Config.VocabSize)); math.Abs(r.Loss-lnV) > 1.5 {
		t.Errorf("loss %g, want near ln(vocab) = %g", r.Loss, lnV)
	}
	// Packed into one row per micro-batch: the same sequences, so about the same loss (dropout masks differ).
	var packed bytes.Buffer
	p, err := Train(TrainOptions{Shape: Shape{Model: "tiny", Seed: 1}, Device: "cpu", Batch: 2, Seq: 16, GradAccum: 2,
		Rank: 4, LossFrac: 0.5, Warmup: 1, Updates: 2, Pack: true}, &packed)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Packed || p.Batch != 2 || p.Seq != 16 || math.Abs(p.Loss-r.Loss) > 0.02*r.Loss {
		t.Errorf("packed: %+v; in rows: loss %g", p, r.Loss)
	}
	if _, err := Train(TrainOptions{Shape: Shape{Model: "tiny"}, Device: "cpu", Batch: 0, Seq: 16, GradAccum: 1, Rank: 4, LossFrac: 0.5, Updates: 1}, &out); err == nil {
		t.Error("batch 0 accepted")
	}
}

// The generation benchmark runs the CPU generator on the tiny model: one line per batch size, exactly New
// tokens per prompt.
func TestGenerateCPU(t *testing.T) {
	var out bytes.Buffer
	rs, err := Generate(GenerateOptions{Shape: Shape{Model: "tiny", Seed: 1}, Device: "cpu", Batches: []int{1, 3},
		Prompt: 12, New: 5, Repeats: 1}, &out)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	for i, b := range []int{1, 3} {
		var r GenerateResult
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !reflect.DeepEqual(r, rs[i]) || r.Batch != b || r.New != 5 || r.NewTokPS <= 0 || r.StepProfileMs != nil ||
			r.FirstTokenS <= 0 || r.StepMs < 0 {
			t.Errorf("line %d: %+v (returned %+v)", i+1, r, rs[i])
		}
		// step_ms is the rest of the generation per later token (0 if the one-token runs happened to be slower),
		// from s and first_token_s before their rounding to 0.1 ms.
		if want := 1000 * max(r.S-r.FirstTokenS, 0) / 4; math.Abs(r.StepMs-want) > 1000*1e-4/4+1e-4 {
			t.Errorf("line %d: step_ms %g, want 1000·(s − first_token_s)/(new − 1) = %g", i+1, r.StepMs, want)
		}
	}
	if _, err := Generate(GenerateOptions{Shape: Shape{Model: "tiny"}, Device: "nope", Batches: []int{1}, Prompt: 4, New: 1, Repeats: 1}, &out); err == nil {
		t.Error("unknown device accepted")
	}
	_, err = Generate(GenerateOptions{Shape: Shape{Model: "tiny"}, Device: "cpu", Batches: []int{1}, Prompt: 4, New: 2, Repeats: 1, Profile: true}, &out)
	if err == nil || !strings.Contains(err.Error(), "--profile needs --device cuda") {
		t.Errorf("--profile on the CPU generator: %v, want an error naming --device cuda", err)
	}
}

// fakeProfiler is the CPU backend with a launch profiler that reports one run of fixed times.
type fakeProfiler struct {
	train.Backend
	on   bool
	runs int
}

func (f *fakeProfiler) SetProfile(on bool) { f.on = on }

func (f *fakeProfiler) Loss(b model.Batch, rows, seq int, step uint64, g [][]float32) (float32, error) {
	if f.on {
		f.runs++
	}
	return f.Backend.Loss(b, rows, seq, step, g)
}

func (f *fakeProfiler) Profile() (map[string]float64, int) {
	return map[string]float64{"LinearOp": 1.23456, "AttentionOp": 0.5}, f.runs
}

// --profile: a backend without a launch profiler is an error naming it; with one, exactly one extra
// micro-batch runs profiled, its times come back rounded to 0.01 ms and the table goes to the log.
func TestTrainProfile(t *testing.T) {
	o := TrainOptions{Shape: Shape{Model: "tiny", Seed: 1}, Device: "cpu", Batch: 2, Seq: 16, GradAccum: 2,
		Rank: 4, LossFrac: 0.5, Warmup: 0, Updates: 1, Profile: true}
	if _, err := Train(o, io.Discard); err == nil || !strings.Contains(err.Error(), "cannot time its launches") {
		t.Errorf("--profile on the CPU backend: %v", err)
	}
	cpu, params, cfg := tinyCPUBackend(t)
	fp := &fakeProfiler{Backend: cpu}
	defer fp.Close()
	upd, err := train.NewUpdater(fp, params, train.NewAdamW(params.Sizes(), 0), 1, true)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o.Log = &log
	ms, err := profileMicroBatch(fp, upd, trainBatches(o, cfg.VocabSize)[0], o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"LinearOp": 1.23, "AttentionOp": 0.5, "phase: forward": 1.73, "phase: loss": 0, "phase: backward": 0}
	if fp.runs != 1 || fp.on || !reflect.DeepEqual(ms, want) {
		t.Errorf("profiled runs %d (profiler left on: %v), times %v", fp.runs, fp.on, ms)
	}
	if !strings.Contains(log.String(), "LinearOp") || strings.Index(log.String(), "LinearOp") > strings.Index(log.String(), "AttentionOp") {
		t.Errorf("log table not longest first:\n%s", log.String())
	}
}

// profilePhases puts each kind of op in its phase and leaves the "of which" parts out.
func TestProfilePhases(t *testing.T) {
	got := profilePhases(map[string]float64{"LinearOp": 3, "AttentionOp": 1, "of which NF4 dequantize": 2,
		"LinearGradInputOp": 4, "AttentionGradOp": 2, "LoRAGradOp A": 0.5, "gorgonia +": 0.25, "SliceOp": 0.25,
		"LMHeadCrossEntropyOp": 1.5})
	want := map[string]float64{"phase: forward": 4, "phase: loss": 1.5, "phase: backward": 7}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
}

// fakeHostTimer is the CPU backend reporting a host split that grows with each micro-batch.
type fakeHostTimer struct {
	train.Backend
	n int
}

func (f *fakeHostTimer) Loss(b model.Batch, rows, seq int, step uint64, g [][]float32) (float32, error) {
	f.n++
	return f.Backend.Loss(b, rows, seq, step, g)
}

func (f *fakeHostTimer) HostTimes() (launch, wait time.Duration) {
	return time.Duration(f.n) * time.Millisecond, time.Duration(10*f.n) * time.Millisecond
}

// timeUpdates reports the medians of a train.HostTimer's split over the timed micro-batches only (the
// warm-up update's are left out), and none for a backend without one.
func TestTimeUpdatesHostSplit(t *testing.T) {
	o := TrainOptions{Shape: Shape{Model: "tiny", Seed: 1}, Device: "cpu", Batch: 2, Seq: 16, GradAccum: 2,
		Rank: 4, LossFrac: 0.5, Warmup: 1, Updates: 2}
	cpu, params, cfg := tinyCPUBackend(t)
	defer cpu.Close()
	batches := trainBatches(o, cfg.VocabSize)
	for _, c := range []struct {
		backend          train.Backend
		launchMs, waitMs float64
	}{
		// micro-batches 3..6 are timed: launches 3, 4, 5, 6 ms, median (upper) 5; waits 50.
		{&fakeHostTimer{Backend: cpu}, 5, 50},
		{cpu, 0, 0},
	} {
		upd, err := train.NewUpdater(c.backend, params, train.NewAdamW(params.Sizes(), 0), 1, true)
		if err != nil {
			t.Fatal(err)
		}
		tt, err := timeUpdates(c.backend, upd, batches, o)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(tt.launchMs-c.launchMs) > 1e-9 || math.Abs(tt.waitMs-c.waitMs) > 1e-9 || tt.update <= 0 || tt.micro <= 0 {
			t.Errorf("%T: %+v, want launch %g ms and wait %g ms", c.backend, tt, c.launchMs, c.waitMs)
		}
	}
}

// tinyCPUBackend is the CPU training backend on random NF4 weights of the tiny model with a rank-4 adapter.
func tinyCPUBackend(t *testing.T) (train.Backend, *train.Params, model.Config) {
	t.Helper()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.RandomNF4Weights(reg.Config, 1)
	if err != nil {
		t.Fatal(err)
	}
	params := train.NewParams(model.RandomLoRA(w, 4, 0.01, rand.New(rand.NewPCG(1, 2)).NormFloat64))
	f, ok := train.LookupBackend("cpu")
	if !ok {
		t.Fatal("no cpu training backend")
	}
	b, err := f(w, params)
	if err != nil {
		t.Fatal(err)
	}
	return b, params, reg.Config
}
