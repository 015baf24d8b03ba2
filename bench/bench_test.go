package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/t2m/t2m/model"
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
	if line != *r {
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
		if r != rs[i] || r.Batch != b || r.New != 5 || r.NewTokPS <= 0 {
			t.Errorf("line %d: %+v (returned %+v)", i+1, r, rs[i])
		}
	}
	if _, err := Generate(GenerateOptions{Shape: Shape{Model: "tiny"}, Device: "nope", Batches: []int{1}, Prompt: 4, New: 1, Repeats: 1}, &out); err == nil {
		t.Error("unknown device accepted")
	}
}
