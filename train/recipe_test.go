package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// loggedLRs reads the learning_rate of every update line of a run's metrics.jsonl.
func loggedLRs(t *testing.T, dir string) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lrs []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.LR != nil {
			lrs = append(lrs, *m.LR)
		}
	}
	return lrs
}

// Each --lr-scheduler kind gives the learning rates HF's schedules give, and the loop logs them: after
// the warmup, cosine and linear decay differ and constant stays at the peak.
func TestSchedulerChangesLoggedLR(t *testing.T) {
	seqs := randomSeqs(8, smallConfig().VocabSize, 3)
	got := map[string][]float64{}
	for _, kind := range Schedulers {
		fp := testFingerprint()
		fp.Epochs, fp.BatchSize, fp.GradAccum, fp.WarmupRatio, fp.Scheduler = 1, 1, 1, 0.25, kind // 8 updates, warmup 2
		dir := t.TempDir()
		r := newTestRun(t, dir, fp, seqs, nil)
		if _, err := r.Train(); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		got[kind] = loggedLRs(t, dir)
		s := Schedule{Peak: fp.LR, Warmup: 2, Total: 8, Kind: kind}
		for k, lr := range got[kind] {
			if lr != s.LR(k) {
				t.Errorf("%s: update %d logged lr %g, schedule %g", kind, k+1, lr, s.LR(k))
			}
		}
		if len(got[kind]) != 8 || got[kind][0] != 0 || got[kind][1] != fp.LR/2 || got[kind][2] != fp.LR {
			t.Errorf("%s: logged lrs %v, want 8 starting 0, peak/2, peak", kind, got[kind])
		}
	}
	// Update 6 (k = 5): cosine 0.5·(1+cos(π·3/6)) = 0.5 of the peak, linear (8−5)/6 = 0.5 too; update 5
	// (k = 4): cosine 0.75, linear 4/6.
	lr := testFingerprint().LR
	if c, l, k := got["cosine"][4], got["linear"][4], got["constant"][4]; math.Abs(c-0.75*lr) > 1e-12 || math.Abs(l-lr*4/6) > 1e-12 || k != lr {
		t.Errorf("update 5: cosine %g, linear %g, constant %g; want %g, %g, %g", c, l, k, 0.75*lr, lr*4/6, lr)
	}
}

func TestCheckRecipe(t *testing.T) {
	if err := CheckRecipe(testFingerprint()); err != nil {
		t.Fatalf("default recipe: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Fingerprint)
		want string
	}{
		{func(f *Fingerprint) { f.Scheduler = "step" }, `--lr-scheduler: unknown learning-rate schedule "step": accepted are cosine, linear, constant`},
		{func(f *Fingerprint) { f.Scheduler = "" }, `unknown learning-rate schedule ""`},
		{func(f *Fingerprint) { f.WarmupRatio = 1.5 }, "--warmup-ratio 1.5 must be in [0, 1]"},
		{func(f *Fingerprint) { f.WarmupRatio = math.NaN() }, "--warmup-ratio NaN"},
		{func(f *Fingerprint) { f.WeightDecay = -0.1 }, "--weight-decay -0.1 must be a finite number ≥ 0"},
		{func(f *Fingerprint) { f.MaxGradNorm = math.Inf(1) }, "--max-grad-norm +Inf must be a finite number ≥ 0 (0: no clipping"},
		{func(f *Fingerprint) { f.Dropout = 1 }, "--lora-dropout 1 must be in [0, 1)"},
	} {
		fp := testFingerprint()
		tc.edit(&fp)
		if err := CheckRecipe(fp); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
		r := newTestRun(t, t.TempDir(), testFingerprint(), randomSeqs(2, smallConfig().VocabSize, 1), nil)
		r.Fingerprint = fp
		if _, err := r.Train(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run.Train: err %v, want %q", err, tc.want)
		}
	}
}

// Weight decay and clipping change the update; with max grad norm 0 the gradients are not clipped.
func TestWeightDecayAndClippingChangeUpdates(t *testing.T) {
	seqs := randomSeqs(4, smallConfig().VocabSize, 9)
	final := func(edit func(*Fingerprint)) [][]float32 {
		fp := testFingerprint()
		fp.Epochs, fp.BatchSize, fp.GradAccum, fp.WarmupRatio, fp.Dropout = 1, 1, 1, 0, 0
		edit(&fp)
		r := newTestRun(t, t.TempDir(), fp, seqs, nil)
		r.Params.LoRA.Dropout = 0
		if _, err := r.Train(); err != nil {
			t.Fatal(err)
		}
		return copyParams(r.Params)
	}
	equal := func(a, b [][]float32) bool {
		return slices.EqualFunc(a, b, func(x, y []float32) bool { return slices.Equal(x, y) })
	}
	base := final(func(*Fingerprint) {})
	if equal(base, final(func(*Fingerprint) {})) == false {
		t.Fatal("the same run twice gave different parameters")
	}
	if equal(base, final(func(f *Fingerprint) { f.WeightDecay = 0.5 })) {
		t.Error("--weight-decay 0.5 left the parameters as without decay")
	}
	if equal(base, final(func(f *Fingerprint) { f.MaxGradNorm = 1e-3 })) {
		t.Error("--max-grad-norm 1e-3 left the parameters as with 1")
	}
	// A norm this large never clips: the same as no clipping (0).
	if !equal(final(func(f *Fingerprint) { f.MaxGradNorm = 1e9 }), final(func(f *Fingerprint) { f.MaxGradNorm = 0 })) {
		t.Error("--max-grad-norm 0 differs from a bound that never clips")
	}
}

// A run whose every update is in the warmup's first step (rate 0) says so before training.
func TestZeroLearningRateWarning(t *testing.T) {
	for _, tc := range []struct {
		seqs   int
		warmup float64
		want   string
	}{
		{2, 0.05, "warning: the only update of this run has learning rate 0"},
		{2, 0, ""},
		{4, 0.05, ""}, // 2 updates: the second has the peak rate
	} {
		fp := testFingerprint()
		fp.Epochs, fp.BatchSize, fp.GradAccum, fp.WarmupRatio = 1, 2, 1, tc.warmup
		r := newTestRun(t, t.TempDir(), fp, randomSeqs(tc.seqs, smallConfig().VocabSize, 2), nil)
		var log bytes.Buffer
		r.Log = &log
		if _, err := r.Train(); err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(log.String(), "learning rate 0")
		if tc.want != "" && !strings.Contains(log.String(), tc.want) || tc.want == "" && has {
			t.Errorf("%d sequences, warmup ratio %g: log\n%s\nwant %q", tc.seqs, tc.warmup, log.String(), tc.want)
		}
	}
	if n := (Schedule{Peak: 1, Warmup: 3, Total: 10, Kind: "linear"}).ZeroLRUpdates(); n != 1 {
		t.Errorf("ZeroLRUpdates of a 3-update warmup over 10: %d, want 1", n)
	}
}

// --resume refuses a checkpoint written with another recipe and names what changed; a checkpoint
// written before the target modules were recorded ("") resumes as the default targets.
func TestResumeRefusesChangedRecipe(t *testing.T) {
	dir := t.TempDir()
	fp := testFingerprint()
	seqs := randomSeqs(8, smallConfig().VocabSize, 4)
	r := newTestRun(t, dir, fp, seqs, nil)
	r.MaxSteps = 1
	if _, err := r.Train(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Fingerprint)
		want string
	}{
		{func(f *Fingerprint) { f.Scheduler = "linear" }, "lr_scheduler: checkpoint cosine, now linear"},
		{func(f *Fingerprint) { f.WarmupRatio = 0.1 }, "warmup_ratio: checkpoint 0.05, now 0.1"},
		{func(f *Fingerprint) { f.WeightDecay = 0.01 }, "weight_decay: checkpoint 0, now 0.01"},
		{func(f *Fingerprint) { f.MaxGradNorm = 0.5 }, "max_grad_norm: checkpoint 1, now 0.5"},
		{func(f *Fingerprint) { f.Dropout = 0.1 }, "lora_dropout: checkpoint 0.05, now 0.1"},
		{func(f *Fingerprint) { f.Targets = "q_proj,v_proj" }, "lora_target_modules: checkpoint gate_proj,k_proj,o_proj,q_proj,up_proj,v_proj, now q_proj,v_proj"},
		{func(f *Fingerprint) { f.InitAdapter, f.InitAdapterSHA256 = "a", "00" }, "init_adapter: checkpoint (none), now a"},
	} {
		changed := fp
		tc.edit(&changed)
		r2 := newTestRun(t, dir, changed, seqs, nil)
		r2.Resume = true
		_, err := r2.Train()
		if err == nil || !strings.Contains(err.Error(), "other settings") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("resume with a changed recipe: %v, want it to name %q", err, tc.want)
		}
	}
	// The same recipe with the default targets spelled out resumes the checkpoint that left them "".
	same := fp
	same.Targets = TargetsKey(nil)
	r3 := newTestRun(t, dir, same, seqs, nil)
	r3.Resume = true
	if _, err := r3.Train(); err != nil {
		t.Errorf("resume with the default targets spelled out: %v", err)
	}
}
