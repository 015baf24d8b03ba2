// Package traintest holds the trajectory-parity fixture that train's and gpu's tests share: a whole
// training run of t2m's loop (train.Run) compared update by update with the same run in Hugging Face
// PEFT + torch AdamW + transformers' cosine schedule (scripts/fixtures/make_trajectory_fixture.py).
// Only tests import it.
//
// The fixture lives in train/testdata/trajectory (Dir):
//
//	inputs.json            written by t2m (WriteInputs): the hyperparameters, the training sequences, and
//	                       every micro-batch exactly as train.Run fed it to its backend (ids, labels,
//	                       attention mask, the update it belongs to, the window's completion tokens)
//	init_adapter/          written by t2m: the initial LoRA adapter in PEFT format (B non-zero)
//	reference.json         written by the script: per update the loss, the pre-clip grad norm and the lr,
//	                       and the SHA-256 of the inputs it was made from
//	final_adapter/         written by the script: PEFT's adapter after the last update
//
// The inputs are committed with the code that writes them; the reference appears once the script has run
// on a machine with torch, transformers and peft. Until then Check skips.
package traintest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// Files and folders of the fixture directory.
const (
	InputsFile      = "inputs.json"
	InitAdapterDir  = "init_adapter"
	ReferenceFile   = "reference.json"
	FinalAdapterDir = "final_adapter"
)

// ModelDir is the base model of the run, relative to the repository root: the tiny Qwen2 whose HF
// references model/'s tests use (scripts/fixtures/make_qwen2_fixture.py made it; bf16 weights, read as
// float32 on both sides).
const ModelDir = "model/testdata/qwen2_tiny"

// ScriptCommand is how the reference is made (the script's docstring has the full command for the GPU
// machine).
const ScriptCommand = "python3 scripts/fixtures/make_trajectory_fixture.py"

// repoRoot is the repository's root, found from this source file's location.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("traintest: cannot locate the source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Dir is the absolute path of train/testdata/trajectory.
func Dir() string { return filepath.Join(repoRoot(), "train", "testdata", "trajectory") }

// Hyper are the run's hyperparameters as inputs.json records them; the script reads every value it uses
// from here.
type Hyper struct {
	ModelDir     string   `json:"model_dir"` // relative to the repository root
	Rank         int      `json:"lora_r"`
	Alpha        float64  `json:"lora_alpha"`
	Dropout      float64  `json:"lora_dropout"`
	Targets      []string `json:"lora_target_modules"`
	Epochs       int      `json:"epochs"`
	BatchSize    int      `json:"batch_size"`
	GradAccum    int      `json:"grad_accum"`
	LR           float64  `json:"learning_rate"`
	Scheduler    string   `json:"lr_scheduler"`
	WarmupRatio  float64  `json:"warmup_ratio"`
	WarmupSteps  int      `json:"warmup_steps"`  // train.WarmupSteps(TotalUpdates, WarmupRatio): HF's ceil
	TotalUpdates int      `json:"total_updates"` // updates per epoch (windows) × epochs
	WeightDecay  float64  `json:"weight_decay"`
	MaxGradNorm  float64  `json:"max_grad_norm"`
	Beta1        float64  `json:"adam_beta1"`
	Beta2        float64  `json:"adam_beta2"`
	Eps          float64  `json:"adam_epsilon"`
	Seed         uint64   `json:"seed"`   // shuffles epoch e with data.Shuffle(seed+e)
	Bucket       int      `json:"bucket"` // micro-batch lengths padded to a multiple of this
	PadID        int32    `json:"pad_id"`
}

// Sequence is one training sequence of inputs.json.
type Sequence struct {
	IDs       []int32 `json:"ids"`
	PromptLen int     `json:"prompt_len"`
}

// MicroBatch is one micro-batch as the loop passed it to Backend.Loss, rows of Seq positions each.
type MicroBatch struct {
	Update        int       `json:"update"` // 1-based update (accumulation window) it belongs to
	Epoch         int       `json:"epoch"`  // 0-based
	Rows          int       `json:"rows"`
	Seq           int       `json:"seq"`
	NumItems      int       `json:"num_items"` // completion tokens (after the shift) of the whole window
	InputIDs      [][]int32 `json:"input_ids"`
	Labels        [][]int32 `json:"labels"`
	AttentionMask [][]int32 `json:"attention_mask"`
}

// Inputs is inputs.json.
type Inputs struct {
	Comment      string       `json:"comment"`
	Hyper        Hyper        `json:"hyperparameters"`
	Sequences    []Sequence   `json:"sequences"`
	MicroBatches []MicroBatch `json:"micro_batches"`
}

// Update is one update of reference.json.
type Update struct {
	Step     int     `json:"step"` // 1-based
	Loss     float64 `json:"loss"` // Σ over the window's micro-batches of (Σ token CE) / NumItems
	GradNorm float64 `json:"grad_norm"`
	LR       float64 `json:"learning_rate"` // the rate this update applied
	NumItems int     `json:"num_items"`
}

// Reference is reference.json.
type Reference struct {
	Versions     map[string]string `json:"versions"`
	InputsSHA256 map[string]string `json:"inputs_sha256"` // file under Dir → SHA-256 of the inputs used
	Updates      []Update          `json:"updates"`
}

// The run: 27 sequences in micro-batches of 2 (the last of each epoch has one row), accumulation 2,
// so 7 updates per epoch over 4 epochs: 28 updates, 2 of them warmup. The initial adapter's scale makes
// the pre-clip grad norms straddle max_grad_norm 1 (about 0.6 to 1.4), so clipped and unclipped updates
// both occur.
const (
	numSeqs   = 27
	vocab     = 256  // the tiny model's
	adapterSd = 1    // lora.New's seed for A
	aScale    = 0.5  // A = lora.New's A times this
	bStd      = 0.02 // B ~ N(0, bStd²)
)

// spec returns the hyperparameters (without the derived counts) and the sequences of the run.
func spec() (Hyper, []Sequence) {
	h := Hyper{ModelDir: ModelDir, Rank: 4, Alpha: 8, Dropout: 0, Targets: slices.Clone(lora.DefaultTargets),
		Epochs: 4, BatchSize: 2, GradAccum: 2, LR: 3e-3, Scheduler: train.DefaultScheduler,
		WarmupRatio: train.DefaultWarmupRatio, WeightDecay: train.DefaultWeightDecay, MaxGradNorm: train.DefaultMaxGradNorm,
		Seed: 42, Bucket: 8, PadID: 0}
	opt := train.NewAdamW(nil, h.WeightDecay)
	h.Beta1, h.Beta2, h.Eps = opt.Beta1, opt.Beta2, opt.Eps
	slices.Sort(h.Targets)
	// A prompt of 4-15 ids, then a completion of 2-9 that copies ids of the prompt (learnable), ids in
	// [1, vocab): 0 is the padding.
	rng := rand.New(rand.NewPCG(7, 11))
	seqs := make([]Sequence, numSeqs)
	for i := range seqs {
		p, c := 4+rng.IntN(12), 2+rng.IntN(8)
		ids := make([]int32, p+c)
		for t := range p {
			ids[t] = int32(1 + rng.IntN(vocab-1))
		}
		off := rng.IntN(p)
		for t := range c {
			ids[p+t] = ids[(off+t)%p]
		}
		seqs[i] = Sequence{IDs: ids, PromptLen: p}
	}
	return h, seqs
}

// initialAdapter is the run's starting adapter: lora.New's A (PEFT's kaiming-uniform init) times aScale
// and a non-zero B ~ N(0, bStd²), so both matrices get gradients from the first update.
func initialAdapter(cfg model.Config, h Hyper) (*lora.Adapter, error) {
	ad, err := lora.New(lora.Config{R: h.Rank, Alpha: h.Alpha, Dropout: h.Dropout, Targets: h.Targets, BaseModel: h.ModelDir},
		cfg.NumLayers, cfg.LoRADims(), adapterSd)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for _, path := range ad.Paths() {
		for i := range ad.Pairs[path].A {
			ad.Pairs[path].A[i] *= aScale
		}
		for i := range ad.Pairs[path].B {
			ad.Pairs[path].B[i] = float32(rng.NormFloat64() * bStd)
		}
	}
	return ad, nil
}

// fingerprint is the loop's view of h.
func fingerprint(h Hyper, seqs []data.Sequence) train.Fingerprint {
	tokens := 0
	for _, s := range seqs {
		tokens += len(s.IDs)
	}
	return train.Fingerprint{Model: h.ModelDir, Rank: h.Rank, Alpha: h.Alpha, Dropout: h.Dropout, Epochs: h.Epochs,
		BatchSize: h.BatchSize, GradAccum: h.GradAccum, LR: h.LR, Scheduler: h.Scheduler, WarmupRatio: h.WarmupRatio,
		WeightDecay: h.WeightDecay, MaxGradNorm: h.MaxGradNorm, MaxLen: 128, Seed: h.Seed, TrainSeqs: len(seqs),
		TrainTokens: tokens, Quantization: "none"}
}

func dataSeqs(in []Sequence) []data.Sequence {
	out := make([]data.Sequence, len(in))
	for i, s := range in {
		out[i] = data.Sequence{IDs: slices.Clone(s.IDs), PromptLen: s.PromptLen, Example: i}
	}
	return out
}

// recorder is the Backend the loop trains through: it records (or checks against want) every training
// micro-batch the loop passes, then runs inner (nil: loss 1 and no gradients, enough to let the loop
// form all its batches).
type recorder struct {
	inner     train.Backend
	gradAccum int
	windows   int          // updates per epoch
	want      []MicroBatch // when set, each call must match want[len(got)]
	got       []MicroBatch // what the loop passed
	numItems  map[int]int  // update → the window's completion tokens as the loop set them
}

func (r *recorder) Name() string {
	if r.inner == nil {
		return "recorder"
	}
	return r.inner.Name()
}

func (r *recorder) Close() error {
	if r.inner == nil {
		return nil
	}
	return r.inner.Close()
}

func rowsOf(v []int32, rows, seq int) [][]int32 {
	out := make([][]int32, rows)
	for i := range out {
		out[i] = slices.Clone(v[i*seq : (i+1)*seq])
	}
	return out
}

func (r *recorder) Loss(b model.Batch, rows, seq int, dropoutStep uint64, grads [][]float32) (float32, error) {
	if grads == nil { // an evaluation: the run has no eval split, so this does not happen
		return 0, errors.New("traintest: unexpected evaluation call")
	}
	update := int(dropoutStep)/r.gradAccum + 1 // the loop seeds micro-batch k of update s with s·GradAccum+k
	mask := b.Mask
	if mask == nil {
		mask = make([]int32, rows*seq)
		for i := range mask {
			mask[i] = 1
		}
	}
	mb := MicroBatch{Update: update, Epoch: (update - 1) / r.windows, Rows: rows, Seq: seq, NumItems: int(b.NumItems),
		InputIDs: rowsOf(b.IDs, rows, seq), Labels: rowsOf(b.Labels, rows, seq), AttentionMask: rowsOf(mask, rows, seq)}
	if float32(mb.NumItems) != b.NumItems || b.Positions != nil {
		return 0, fmt.Errorf("traintest: micro-batch %d: NumItems %v, positions %v: want an integer count and no positions", len(r.got)+1, b.NumItems, b.Positions)
	}
	if r.want != nil {
		k := len(r.got)
		if k >= len(r.want) {
			return 0, fmt.Errorf("traintest: the loop ran micro-batch %d, the fixture has %d", k+1, len(r.want))
		}
		w, _ := json.Marshal(r.want[k])
		g, _ := json.Marshal(mb)
		if !bytes.Equal(w, g) {
			return 0, fmt.Errorf("traintest: the loop's micro-batch %d differs from %s's (the loop's batching or data.Shuffle changed?):\n  loop    %s\n  fixture %s\nrewrite the inputs (go test ./train -run TestTrajectoryInputs -args -write-trajectory-inputs) and remake the reference (%s)",
				k+1, InputsFile, g, w, ScriptCommand)
		}
	}
	r.got = append(r.got, mb)
	if r.numItems == nil {
		r.numItems = map[int]int{}
	}
	r.numItems[update] = mb.NumItems
	if r.inner == nil {
		return 1, nil
	}
	return r.inner.Loss(b, rows, seq, dropoutStep, grads)
}

// loadModel reads the tiny model in float32.
func loadModel() (*model.Weights, error) {
	return model.LoadDir(filepath.Join(repoRoot(), ModelDir), model.LoadOptions{})
}

// WriteInputs writes inputs.json and init_adapter/ into dir: the hyperparameters, the sequences, the
// initial adapter, and the micro-batches that train.Run forms from them (recorded by running the loop on a
// backend that does nothing), so the reference trains on exactly what t2m feeds its backend. The result
// is the same bytes on every run.
func WriteInputs(dir string) error {
	w, err := loadModel()
	if err != nil {
		return err
	}
	h, seqs := spec()
	ad, err := initialAdapter(w.Config, h)
	if err != nil {
		return err
	}
	ds := dataSeqs(seqs)
	nBatches := (len(ds) + h.BatchSize - 1) / h.BatchSize
	windows := (nBatches + h.GradAccum - 1) / h.GradAccum
	h.TotalUpdates = windows * h.Epochs
	h.WarmupSteps = train.WarmupSteps(h.TotalUpdates, h.WarmupRatio)

	// Run the loop on a copy of the adapter (the run updates its parameters in place).
	scratch, err := os.MkdirTemp("", "t2m-trajectory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	if err := ad.Save(filepath.Join(scratch, "init")); err != nil {
		return err
	}
	run, rec, err := newRun(filepath.Join(scratch, "run"), filepath.Join(scratch, "init"), w, h, ds, nil)
	if err != nil {
		return err
	}
	if _, err := run.Train(); err != nil {
		return err
	}
	if len(rec.got) == 0 || rec.got[len(rec.got)-1].Update != h.TotalUpdates {
		return fmt.Errorf("traintest: the loop ran %d micro-batches; want %d updates", len(rec.got), h.TotalUpdates)
	}

	in := Inputs{Comment: "Written by t2m (go test ./train -run TestTrajectoryInputs -args -write-trajectory-inputs); " +
		"read by scripts/fixtures/make_trajectory_fixture.py. micro_batches are what train.Run passed to its backend, in order.",
		Hyper: h, Sequences: seqs, MicroBatches: rec.got}
	raw, err := encodeInputs(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := ad.Save(filepath.Join(dir, InitAdapterDir)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, InputsFile), raw, 0o644)
}

// encodeInputs writes in as JSON with one sequence or micro-batch per line (small, and readable in a diff).
func encodeInputs(in Inputs) ([]byte, error) {
	var b bytes.Buffer
	put := func(v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(raw)
		return nil
	}
	b.WriteString("{\n  \"comment\": ")
	if err := put(in.Comment); err != nil {
		return nil, err
	}
	b.WriteString(",\n  \"hyperparameters\": ")
	hraw, err := json.MarshalIndent(in.Hyper, "  ", "  ")
	if err != nil {
		return nil, err
	}
	b.Write(hraw)
	for _, list := range []struct {
		name  string
		items int
		item  func(i int) any
	}{
		{"sequences", len(in.Sequences), func(i int) any { return in.Sequences[i] }},
		{"micro_batches", len(in.MicroBatches), func(i int) any { return in.MicroBatches[i] }},
	} {
		fmt.Fprintf(&b, ",\n  %q: [", list.name)
		for i := range list.items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("\n    ")
			if err := put(list.item(i)); err != nil {
				return nil, err
			}
		}
		b.WriteString("\n  ]")
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// newRun makes the loop's run in runDir: the adapter read from the PEFT directory adapterDir, dropout
// off, the sequences, and a recorder around the device's backend (nil: no backend). Reserve is called
// with the largest micro-batch, as the pipeline does for a backend of one shape (the GPU's).
func newRun(runDir, adapterDir string, w *model.Weights, h Hyper, seqs []data.Sequence, factory train.BackendFactory) (*train.Run, *recorder, error) {
	ad, err := lora.Load(adapterDir, w.Config.LoRADims())
	if err != nil {
		return nil, nil, err
	}
	if ad.Config.R != h.Rank || ad.Config.Alpha != h.Alpha || ad.Config.Dropout != h.Dropout {
		return nil, nil, fmt.Errorf("traintest: %s has r %d, alpha %v, dropout %v; the run wants %d, %v, %v",
			adapterDir, ad.Config.R, ad.Config.Alpha, ad.Config.Dropout, h.Rank, h.Alpha, h.Dropout)
	}
	lp, err := model.LoRAFromAdapter(ad)
	if err != nil {
		return nil, nil, err
	}
	lp.Dropout = float32(h.Dropout)
	params := train.NewParams(lp)
	nBatches := (len(seqs) + h.BatchSize - 1) / h.BatchSize
	rec := &recorder{gradAccum: h.GradAccum, windows: (nBatches + h.GradAccum - 1) / h.GradAccum}
	if factory != nil {
		be, err := factory(w, params)
		if err != nil {
			return nil, nil, err
		}
		if r, ok := be.(train.ShapeReserver); ok {
			longest := 0
			for _, s := range seqs {
				longest = max(longest, len(s.IDs))
			}
			if err := r.Reserve(h.BatchSize, (longest+h.Bucket-1)/h.Bucket*h.Bucket); err != nil {
				be.Close()
				return nil, nil, err
			}
		}
		rec.inner = be
	}
	return &train.Run{Dir: runDir, Fingerprint: fingerprint(h, seqs), Bucket: h.Bucket, PadID: h.PadID,
		Adapter: ad, Params: params, Backend: rec, TrainSeqs: seqs, Log: io.Discard}, rec, nil
}

// ReadInputs reads dir/inputs.json.
func ReadInputs(dir string) (*Inputs, error) {
	raw, err := os.ReadFile(filepath.Join(dir, InputsFile))
	if err != nil {
		return nil, err
	}
	var in Inputs
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("%s: %w", InputsFile, err)
	}
	return &in, nil
}

// sha256File is the hex SHA-256 of a file.
func sha256File(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:]), nil
}

// Tolerances are the bounds of Check.
type Tolerances struct {
	Update  float64 // per update: |loss − ref| and |grad norm − ref| relative to the reference
	Adapter float64 // final adapter: relative L2 over all its values
	LR      float64 // per update: |lr − ref| relative to the peak lr (lr is a double on both sides)
}

// Check trains the fixture's run through train.Run on the device's backend and compares it with the
// reference: every micro-batch equal to inputs.json's, per update the loss, the pre-clip grad norm, the lr
// and the window's completion tokens, and the final adapter. It skips while dir has no reference.json.
func Check(t *testing.T, dir string, factory train.BackendFactory, tol Tolerances) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ReferenceFile)); errors.Is(err, os.ErrNotExist) {
		t.Skipf("no trajectory reference yet: %s has no %s; make it on a machine with torch, transformers and peft "+
			"(%s; the command is at the top of the script) and copy reference.json and final_adapter/ into %s",
			dir, ReferenceFile, ScriptCommand, dir)
	}
	in, err := ReadInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ReferenceFile))
	if err != nil {
		t.Fatal(err)
	}
	var ref Reference
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("%s: %v", ReferenceFile, err)
	}
	t.Logf("reference made with %v", ref.Versions)
	// The reference must have been made from the committed inputs.
	for _, f := range []string{InputsFile, filepath.Join(InitAdapterDir, lora.WeightsFile)} {
		sum, err := sha256File(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.ToSlash(f)
		if ref.InputsSHA256[key] != sum {
			t.Fatalf("%s was made from another %s (sha256 %q, now %s): remake it (%s)", ReferenceFile, key, ref.InputsSHA256[key], sum, ScriptCommand)
		}
	}
	h := in.Hyper
	if len(ref.Updates) != h.TotalUpdates {
		t.Fatalf("%s has %d updates, %s says %d", ReferenceFile, len(ref.Updates), InputsFile, h.TotalUpdates)
	}

	w, err := loadModel()
	if err != nil {
		t.Fatal(err)
	}
	seqs := dataSeqs(in.Sequences)
	runDir := t.TempDir()
	run, rec, err := newRun(runDir, filepath.Join(dir, InitAdapterDir), w, h, seqs, factory)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Backend.Close()
	rec.want = in.MicroBatches
	initial := flatten(run.Adapter)
	res, err := run.Train()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != len(in.MicroBatches) {
		t.Fatalf("the loop ran %d micro-batches, %s has %d", len(rec.got), InputsFile, len(in.MicroBatches))
	}
	if res.Steps != h.TotalUpdates {
		t.Fatalf("the loop did %d updates, want %d", res.Steps, h.TotalUpdates)
	}

	// Per update, from the loop's own metrics.jsonl.
	got, err := readMetrics(filepath.Join(runDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ref.Updates) {
		t.Fatalf("metrics.jsonl has %d updates, the reference %d", len(got), len(ref.Updates))
	}
	rel := func(g, w float64) float64 { return math.Abs(g-w) / math.Abs(w) }
	var worstLoss, worstNorm float64
	clipped := 0
	for i, want := range ref.Updates {
		g := got[i]
		if want.Step != i+1 || g.Step != i+1 {
			t.Fatalf("update %d: reference step %d, metrics step %d", i+1, want.Step, g.Step)
		}
		if rec.numItems[i+1] != want.NumItems {
			t.Errorf("update %d: the loop normalized by %d completion tokens, the reference by %d", i+1, rec.numItems[i+1], want.NumItems)
		}
		el, en := rel(g.Loss, want.Loss), rel(g.GradNorm, want.GradNorm)
		worstLoss, worstNorm = max(worstLoss, el), max(worstNorm, en)
		if want.GradNorm > h.MaxGradNorm {
			clipped++
		}
		t.Logf("update %2d: loss %.7f (ref %.7f, rel %.1e)  grad_norm %.6f (ref %.6f, rel %.1e)  lr %.6g", i+1, g.Loss, want.Loss, el, g.GradNorm, want.GradNorm, en, g.LR)
		if !(el <= tol.Update) {
			t.Errorf("update %d: loss %.9g, reference %.9g: relative error %.3g > %g", i+1, g.Loss, want.Loss, el, tol.Update)
		}
		if !(en <= tol.Update) {
			t.Errorf("update %d: grad norm %.9g, reference %.9g: relative error %.3g > %g", i+1, g.GradNorm, want.GradNorm, en, tol.Update)
		}
		if d := math.Abs(g.LR - want.LR); !(d <= tol.LR*h.LR) {
			t.Errorf("update %d: lr %.17g, reference %.17g", i+1, g.LR, want.LR)
		}
	}
	t.Logf("worst per-update relative error: loss %.2e, grad norm %.2e (bound %g); %d of %d updates clipped", worstLoss, worstNorm, tol.Update, clipped, len(ref.Updates))

	// The final adapter, as the loop saved it.
	final, err := lora.Load(res.AdapterDir, w.Config.LoRADims())
	if err != nil {
		t.Fatal(err)
	}
	want, err := lora.Load(filepath.Join(dir, FinalAdapterDir), w.Config.LoRADims())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(final.Paths(), want.Paths()) {
		t.Fatalf("adapter modules %v, reference %v", final.Paths(), want.Paths())
	}
	gf, wf := flatten(final), flatten(want)
	e := numtest.RelL2(gf, wf)
	moved := numtest.RelL2(initial, wf)
	worst, worstName := -1.0, ""
	for _, path := range want.Paths() {
		for _, ab := range []string{"A", "B"} {
			g, w := final.Pairs[path].A, want.Pairs[path].A
			if ab == "B" {
				g, w = final.Pairs[path].B, want.Pairs[path].B
			}
			if x := numtest.RelL2(g, w); x > worst {
				worst, worstName = x, strings.TrimPrefix(path, "base_model.model.")+".lora_"+ab
			}
		}
	}
	t.Logf("final adapter: relative L2 error %.2e (bound %g), worst matrix %s %.2e; training moved it by %.2e", e, tol.Adapter, worstName, worst, moved)
	if !(e <= tol.Adapter) {
		t.Errorf("final adapter: relative L2 error %.3g > %g", e, tol.Adapter)
	}
	// The bound means something only if training moved the adapter well beyond it.
	if !(moved > 10*tol.Adapter) {
		t.Errorf("the reference run moved the adapter by %.3g (relative L2) only: the adapter bound %g tests nothing", moved, tol.Adapter)
	}
}

// flatten concatenates an adapter's A and B matrices in path order.
func flatten(a *lora.Adapter) []float32 {
	var out []float32
	for _, path := range a.Paths() {
		out = append(out, a.Pairs[path].A...)
		out = append(out, a.Pairs[path].B...)
	}
	return out
}

// metricLine is the part of a metrics.jsonl line Check reads.
type metricLine struct {
	Step     int      `json:"step"`
	Loss     *float64 `json:"loss"`
	LR       *float64 `json:"learning_rate"`
	GradNorm *float64 `json:"grad_norm"`
}

// readMetrics returns the update lines of metrics.jsonl (not the eval ones), in order.
func readMetrics(path string) ([]Update, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Update
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m metricLine
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("metrics.jsonl line %d: %w", i+1, err)
		}
		if m.Loss == nil {
			continue
		}
		if m.LR == nil || m.GradNorm == nil {
			return nil, fmt.Errorf("metrics.jsonl line %d has a loss without lr or grad_norm", i+1)
		}
		out = append(out, Update{Step: m.Step, Loss: *m.Loss, GradNorm: *m.GradNorm, LR: *m.LR})
	}
	return out, nil
}
