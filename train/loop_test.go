package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
)

// smallConfig is a Qwen2 shape small enough for many training steps in a test (GQA 2, biases).
func smallConfig() model.Config {
	return model.Config{HiddenSize: 32, IntermediateSize: 48, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		VocabSize: 61, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 512, Dtype: "float32"}
}

// randomSeqs makes n sequences of random ids: a prompt of 4-9 tokens, then a completion of 2-5 that
// repeats the prompt's first tokens (something LoRA can learn).
func randomSeqs(n, vocab int, seed int64) []data.Sequence {
	rng := rand.New(rand.NewSource(seed))
	var out []data.Sequence
	for i := range n {
		p, c := 4+rng.Intn(6), 2+rng.Intn(4)
		ids := make([]int32, p+c)
		for t := range p {
			ids[t] = int32(rng.Intn(vocab))
		}
		for t := range c {
			ids[p+t] = ids[t]
		}
		out = append(out, data.Sequence{IDs: ids, PromptLen: p, Example: i})
	}
	return out
}

// newTestRun builds a run in dir on the small model with a fresh adapter (seed 1, B = 0).
func newTestRun(t *testing.T, dir string, fp Fingerprint, train, eval []data.Sequence) *Run {
	t.Helper()
	cfg := smallConfig()
	w, err := model.RandomWeights(cfg, 5, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.New(lora.Config{R: fp.Rank, Alpha: fp.Alpha, Dropout: fp.Dropout}, cfg.NumLayers, cfg.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	lp.Dropout = float32(fp.Dropout)
	p := NewParams(lp)
	be, err := newCPUBackend(w, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return &Run{Dir: dir, Fingerprint: fp, Bucket: 8, Adapter: ad, Params: p, Backend: be,
		TrainSeqs: train, EvalSeqs: eval, Log: &bytes.Buffer{}}
}

func testFingerprint() Fingerprint {
	return Fingerprint{Model: "small", Rank: 4, Alpha: 8, Dropout: 0.05, Epochs: 2, BatchSize: 2, GradAccum: 2,
		LR: 1e-2, Scheduler: "cosine", WarmupRatio: 0.05, MaxGradNorm: 1, MaxLen: 32, Seed: 42, Quantization: "none"}
}

func copyParams(p *Params) [][]float32 {
	out := make([][]float32, len(p.Values))
	for i, v := range p.Values {
		out[i] = append([]float32(nil), v...)
	}
	return out
}

// 6 updates straight (12 sequences, micro-batches of 2, accumulation 2, 2 epochs) give bitwise the same
// LoRA parameters as 2 updates, a checkpoint, and a resumed run of the other 4 — with dropout on, an
// epoch boundary and an eval loss in between.
func TestResumeIsExact(t *testing.T) {
	fp := testFingerprint()
	train, eval := randomSeqs(12, smallConfig().VocabSize, 1), randomSeqs(3, smallConfig().VocabSize, 2)

	straight := newTestRun(t, t.TempDir(), fp, train, eval)
	res, err := straight.Train()
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 {
		t.Fatalf("straight run did %d updates, want 6", res.Steps)
	}
	want := copyParams(straight.Params)

	dir := t.TempDir()
	first := newTestRun(t, dir, fp, train, eval)
	first.MaxSteps = 2
	if res, err := first.Train(); err != nil || res.Steps != 2 {
		t.Fatalf("first half: %v, %+v", err, res)
	}
	second := newTestRun(t, dir, fp, train, eval) // fresh adapter: everything must come from the checkpoint
	second.Resume = true
	if res, err = second.Train(); err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 {
		t.Fatalf("resumed run ended at update %d, want 6", res.Steps)
	}
	got := copyParams(second.Params)
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("parameter %d (%s) value %d: resumed %v, straight %v", i, second.Params.Modules[i/2], j, got[i][j], want[i][j])
			}
		}
	}
	// metrics.jsonl of the resumed run has each update once.
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	steps := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m Metric
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		if m.Loss != nil {
			steps[m.Step]++
		}
	}
	for s := 1; s <= 6; s++ {
		if steps[s] != 1 {
			t.Errorf("metrics.jsonl has update %d %d times, want once", s, steps[s])
		}
	}
	// The adapter of the best epoch is on disk in PEFT format.
	if _, err := lora.Load(filepath.Join(dir, "adapter"), smallConfig().LoRADims()); err != nil {
		t.Errorf("adapter: %v", err)
	}
	// A new run into a folder with a checkpoint is refused (no silent overwrite).
	if _, err := newTestRun(t, dir, fp, train, eval).Train(); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("new run over a checkpoint: err = %v", err)
	}
	// Resuming with other settings is refused.
	other := fp
	other.LR = 1e-3
	bad := newTestRun(t, dir, other, train, eval)
	bad.Resume = true
	if _, err := bad.Train(); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("resume with another lr: err = %v", err)
	}
}

// The loss of an accumulation window is the sum of its micro-batch losses, each divided by the window's
// completion tokens: two micro-batches of one shape give the loss and gradients of one batch of both.
func TestAccumulationNormalization(t *testing.T) {
	fp := testFingerprint()
	fp.Dropout = 0
	seqs := randomSeqs(4, smallConfig().VocabSize, 3)
	r := newTestRun(t, t.TempDir(), fp, seqs, nil)
	for i := range r.Params.Values { // non-zero B, so both A and B get gradients
		for j := range r.Params.Values[i] {
			r.Params.Values[i][j] += 0.05 * float32(math.Sin(float64(i*31+j)))
		}
	}
	both := makeBatches(seqs, 4, 0, false, 0, 16, 0)[0]
	parts := makeBatches(seqs, 2, 0, false, 0, 16, 0)
	if parts[0].seq != both.seq || parts[1].seq != both.seq {
		t.Fatalf("test setup: lengths %d, %d, %d differ", parts[0].seq, parts[1].seq, both.seq)
	}
	n := model.CountCompletionTokens(both.batch.Labels, both.rows, both.seq)
	zero := func() [][]float32 {
		g := make([][]float32, len(r.Params.Values))
		for i, v := range r.Params.Values {
			g[i] = make([]float32, len(v))
		}
		return g
	}
	gBoth, gParts := zero(), zero()
	lBoth, err := r.Backend.Loss(both.batch, both.rows, both.seq, 0, gBoth)
	if err != nil {
		t.Fatal(err)
	}
	var lParts float64
	for _, mb := range parts {
		b := mb.batch
		b.NumItems = float32(n)
		l, err := r.Backend.Loss(b, mb.rows, mb.seq, 0, gParts)
		if err != nil {
			t.Fatal(err)
		}
		lParts += float64(l)
	}
	if math.Abs(lParts-float64(lBoth)) > 1e-5*math.Abs(float64(lBoth)) {
		t.Errorf("window loss %v, one-batch loss %v", lParts, lBoth)
	}
	for i := range gBoth {
		for j := range gBoth[i] {
			if d := math.Abs(float64(gBoth[i][j] - gParts[i][j])); d > 1e-5*(1e-3+math.Abs(float64(gBoth[i][j]))) && d > 1e-7 {
				t.Fatalf("gradient %d[%d]: window %v, one batch %v", i, j, gParts[i][j], gBoth[i][j])
			}
		}
	}
}

// Training lowers the loss on a small learnable task, and Stop saves a checkpoint and returns
// ErrInterrupted.
func TestTrainLearnsAndStops(t *testing.T) {
	fp := testFingerprint()
	fp.Epochs, fp.LR, fp.Dropout = 8, 3e-2, 0
	seqs := randomSeqs(4, smallConfig().VocabSize, 4)
	r := newTestRun(t, t.TempDir(), fp, seqs, seqs)
	before, err := r.EvalLoss(8)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Train()
	if err != nil {
		t.Fatal(err)
	}
	if !(res.BestEval < before*0.9) {
		t.Errorf("best eval loss %v, before training %v: want at least 10%% lower", res.BestEval, before)
	}
	log := r.Log.(*bytes.Buffer).String()
	for _, want := range []string{"step 1/8", "loss", "lr", "tok/s", "ETA", "eval_loss"} {
		if !strings.Contains(log, want) {
			t.Errorf("progress output lacks %q:\n%s", want, log)
		}
	}

	// Stop before the second micro-batch of the first window: the partial update is dropped, the checkpoint
	// holds the initial state, and resuming gives bitwise the parameters of an uninterrupted run.
	stop := make(chan struct{})
	close(stop)
	dir := t.TempDir()
	seqs12 := randomSeqs(12, smallConfig().VocabSize, 1)
	s := newTestRun(t, dir, testFingerprint(), seqs12, nil)
	s.Stop = stop
	res, err = s.Train()
	if !errors.Is(err, ErrInterrupted) || res == nil || res.Steps != 0 {
		t.Fatalf("stopped run: err %v, result %+v; want ErrInterrupted after 0 updates", err, res)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint", checkpointState)); err != nil {
		t.Errorf("no checkpoint after Stop: %v", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".checkpoint.tmp-*")); len(entries) != 0 {
		t.Errorf("temporary checkpoint folders left: %v", entries)
	}
	resumed := newTestRun(t, dir, testFingerprint(), seqs12, nil)
	resumed.Resume = true
	if _, err := resumed.Train(); err != nil {
		t.Fatal(err)
	}
	straight := newTestRun(t, t.TempDir(), testFingerprint(), seqs12, nil)
	if _, err := straight.Train(); err != nil {
		t.Fatal(err)
	}
	want, got := copyParams(straight.Params), copyParams(resumed.Params)
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("after an interrupted window and --resume, parameter %d[%d] = %v, uninterrupted %v", i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestMetricsListMicroBatches: each update's metrics line lists its micro-batches in order, with the
// padded shape, the real tokens (an epoch's add up to every training sequence's) and a wall time.
func TestMetricsListMicroBatches(t *testing.T) {
	fp := testFingerprint()
	fp.Epochs = 1
	dir := t.TempDir()
	seqs := randomSeqs(10, smallConfig().VocabSize, 6) // 5 micro-batches of 2: windows of 2, 2 and 1
	if _, err := newTestRun(t, dir, fp, seqs, nil).Train(); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, s := range seqs {
		want += len(s.IDs)
	}
	var counts []int
	tokens := 0
	for _, m := range readMetricsT(t, dir) {
		if m.TokensPS == nil {
			continue // not an update's line
		}
		counts = append(counts, len(m.MicroBatches))
		for _, mb := range m.MicroBatches {
			if mb.Rows != fp.BatchSize || mb.Seq%8 != 0 || mb.Tokens > mb.Rows*mb.Seq || mb.Tokens < mb.Seq-7 ||
				!(mb.MS > 0) {
				t.Errorf("update %d: micro-batch %+v: want %d rows padded to a multiple of 8 that its tokens need, and a time",
					m.Step, mb, fp.BatchSize)
			}
			tokens += mb.Tokens
		}
	}
	if fmt.Sprint(counts) != "[2 2 1]" || tokens != want {
		t.Errorf("micro-batches per update %v, tokens %d; want [2 2 1] and the sequences' %d", counts, tokens, want)
	}
	// A HostTimer backend's split of each micro-batch goes with it.
	dir = t.TempDir()
	r := newTestRun(t, dir, fp, seqs, nil)
	r.Backend = &timedBackend{Backend: r.Backend}
	if _, err := r.Train(); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, m := range readMetricsT(t, dir) {
		for _, mb := range m.MicroBatches {
			seen++
			if mb.LaunchMS != 2.5 || mb.WaitMS != 4 {
				t.Errorf("update %d: micro-batch %+v: want launch_ms 2.5 and wait_ms 4 from the backend", m.Step, mb)
			}
		}
	}
	if seen != 5 {
		t.Errorf("%d micro-batches with times, want 5", seen)
	}
}

// timedBackend is a backend whose HostTimes say 2.5 ms launching and 4 ms waiting.
type timedBackend struct{ Backend }

func (timedBackend) HostTimes() (launch, wait time.Duration) {
	return 2500 * time.Microsecond, 4 * time.Millisecond
}
