package pipeline

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
)

// quickOptions are DefaultTrainOptions for one update of the tiny model on writeSplits' two examples.
func quickOptions(t *testing.T, dataDir string) TrainOptions {
	o := DefaultTrainOptions()
	o.ModelOptions = ModelOptions{Model: "tiny", Device: "cpu"}
	o.DataDir, o.OutputDir = dataDir, filepath.Join(t.TempDir(), "runs")
	o.Rank, o.Epochs, o.BatchSize, o.GradAccum, o.LR, o.MaxLen = 2, 1, 2, 1, 1e-2, 1024
	return o
}

// loadRunAdapter reads a run's adapter for the tiny model.
func loadRunAdapter(t *testing.T, dir string) *lora.Adapter {
	t.Helper()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.Load(dir, reg.Config.LoRADims())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// readRecord reads a run's TrainConfigFile.
func readRecord(t *testing.T, dir string) TrainRecord {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, TrainConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec TrainRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// The recipe reaches the adapter, the loop and the record: --target-modules decides the adapter's
// tensors, and training_config.json's config holds every recipe value.
func TestTrainRecipeReachesAdapterAndRecord(t *testing.T) {
	o := quickOptions(t, writeSplits(t))
	o.Targets = []string{"q_proj", "down_proj"}
	o.Dropout, o.Scheduler, o.WarmupRatio, o.WeightDecay, o.MaxGradNorm = 0.1, "linear", 0, 0.01, 0.5
	res, err := Train(o)
	if err != nil {
		t.Fatal(err)
	}
	a := loadRunAdapter(t, res.AdapterDir)
	var modules []string
	for _, p := range a.Pairs {
		modules = append(modules, p.Module)
	}
	slices.Sort(modules)
	if want := []string{"down_proj", "down_proj", "q_proj", "q_proj"}; !slices.Equal(modules, want) || a.Config.Dropout != 0.1 {
		t.Errorf("adapter has LoRA on %v (dropout %v), want q_proj and down_proj of both layers (0.1)", modules, a.Config.Dropout)
	}
	c := readRecord(t, res.Dir).Config
	if c.Targets != "down_proj,q_proj" || c.Dropout != 0.1 || c.Scheduler != "linear" || c.WarmupRatio != 0 ||
		c.WeightDecay != 0.01 || c.MaxGradNorm != 0.5 || c.InitAdapter != "" {
		t.Errorf("recorded config %+v", c)
	}
}

// LoRA dropout changes the first update's gradients, so the trained adapter.
func TestTrainDropoutChangesAdapter(t *testing.T) {
	dataDir := writeSplits(t)
	trained := func(dropout float64) *lora.Adapter {
		o := quickOptions(t, dataDir)
		o.Dropout, o.WarmupRatio = dropout, 0
		res, err := Train(o)
		if err != nil {
			t.Fatal(err)
		}
		return loadRunAdapter(t, res.AdapterDir)
	}
	a, b := trained(0), trained(0.3)
	same := true
	for path, p := range a.Pairs {
		same = same && slices.Equal(p.B, b.Pairs[path].B)
	}
	if same {
		t.Error("--lora-dropout 0.3 trained the same adapter as 0")
	}
}

// --init-adapter starts from the adapter's values with its rank, alpha and targets: a run whose only
// update has learning rate 0 ends with exactly those values. A different --lora-r, other targets, another
// base model's adapter or one that skips layers is refused before anything is written.
func TestTrainInitAdapter(t *testing.T) {
	dataDir := writeSplits(t)
	first := quickOptions(t, dataDir)
	first.Rank, first.Alpha, first.Targets, first.WarmupRatio = 3, 5, []string{"v_proj", "up_proj"}, 0
	res, err := Train(first)
	if err != nil {
		t.Fatal(err)
	}
	init := loadRunAdapter(t, res.AdapterDir)

	o := quickOptions(t, dataDir)
	o.Rank, o.Targets, o.InitAdapter = 0, nil, res.AdapterDir // the adapter's rank, alpha and targets
	o.WarmupRatio = 1                                         // the one update has rate 0
	got, err := Train(o)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunName != "tiny_r3" {
		t.Errorf("run name %s, want tiny_r3 (the adapter's rank)", got.RunName)
	}
	after := loadRunAdapter(t, got.AdapterDir)
	if after.Config.R != 3 || after.Config.Alpha != 5 || !slices.Equal(after.Config.Targets, []string{"up_proj", "v_proj"}) ||
		after.Config.Dropout != o.Dropout {
		t.Errorf("adapter config %+v", after.Config)
	}
	for path, p := range init.Pairs {
		q := after.Pairs[path]
		if q == nil || !slices.Equal(p.A, q.A) || !slices.Equal(p.B, q.B) {
			t.Errorf("%s: not the initial adapter's values", path)
		}
	}
	c := readRecord(t, got.Dir).Config
	if c.InitAdapter != filepath.Clean(res.AdapterDir) || len(c.InitAdapterSHA256) != 64 || c.Rank != 3 || c.Alpha != 5 || c.Targets != "up_proj,v_proj" {
		t.Errorf("recorded config %+v", c)
	}

	// Bad adapters and conflicting flags.
	reg, _ := model.Lookup("tiny")
	other := reg.Config
	other.HiddenSize, other.IntermediateSize = 32, 48
	wrongShape := filepath.Join(t.TempDir(), "other")
	ad, err := lora.New(lora.Config{R: 2}, other.NumLayers, other.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ad.Save(wrongShape); err != nil {
		t.Fatal(err)
	}
	someLayers := filepath.Join(t.TempDir(), "partial")
	part, _ := lora.New(lora.Config{R: 2, Targets: []string{"q_proj"}}, reg.Config.NumLayers, reg.Config.LoRADims(), 1)
	for path, p := range part.Pairs {
		if p.Layer == 1 {
			delete(part.Pairs, path)
		}
	}
	if err := part.Save(someLayers); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*TrainOptions)
		want string
	}{
		{func(o *TrainOptions) { o.Rank = 8 }, "has r=3, but --lora-r 8 was given"},
		{func(o *TrainOptions) { o.Alpha = 16 }, "has lora_alpha=5, but --lora-alpha 16 was given"},
		{func(o *TrainOptions) { o.Targets = []string{"q_proj"} }, "target_modules=up_proj,v_proj, but --target-modules q_proj was given"},
		{func(o *TrainOptions) { o.InitAdapter = wrongShape }, "--init-adapter " + wrongShape + ": lora:"},
		{func(o *TrainOptions) { o.InitAdapter = someLayers }, "has no q_proj in layer 1"},
		{func(o *TrainOptions) { o.InitAdapter = filepath.Join(t.TempDir(), "none") }, "--init-adapter"},
	} {
		bad := o
		bad.OutputDir = filepath.Join(t.TempDir(), "runs")
		tc.edit(&bad)
		if _, err := Train(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
		if _, err := os.Stat(bad.OutputDir); err == nil {
			t.Errorf("%q: the refused run wrote %s", tc.want, bad.OutputDir)
		}
	}
}

// Every bad recipe value is refused by Validate, naming the flag and what it accepts, before anything is
// read or written.
func TestTrainBadRecipe(t *testing.T) {
	o := quickOptions(t, writeSplits(t))
	for _, tc := range []struct {
		edit func(*TrainOptions)
		want string
	}{
		{func(o *TrainOptions) { o.Targets = []string{"q_proj", "x_proj"} }, `train: --target-modules: unknown target module "x_proj": accepted are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`},
		{func(o *TrainOptions) { o.Targets = []string{} }, "train: --target-modules: no target module"},
		{func(o *TrainOptions) { o.Scheduler = "step" }, `train: --lr-scheduler: unknown learning-rate schedule "step": accepted are cosine, linear, constant`},
		{func(o *TrainOptions) { o.WarmupRatio = -0.1 }, "train: --warmup-ratio -0.1 must be in [0, 1]"},
		{func(o *TrainOptions) { o.WeightDecay = math.NaN() }, "train: --weight-decay NaN must be a finite number ≥ 0"},
		{func(o *TrainOptions) { o.MaxGradNorm = -1 }, "train: --max-grad-norm -1 must be a finite number ≥ 0 (0: no clipping"},
		{func(o *TrainOptions) { o.Dropout = 1 }, "train: --lora-dropout 1 must be in [0, 1)"},
		{func(o *TrainOptions) { o.Rank = 0 }, "train: --lora-r 0 must be positive"},
	} {
		bad := o
		tc.edit(&bad)
		if _, err := Train(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
		if _, err := os.Stat(bad.OutputDir); err == nil {
			t.Errorf("%q: the refused run wrote %s", tc.want, bad.OutputDir)
		}
	}
}

// A built-in model takes --tokenizer, else $T2M_TOKENIZER, else --data-dir's tokenizer.json, else the
// byte tokenizer; a model directory its own.
func TestFindTokenizer(t *testing.T) {
	t.Setenv(TokenizerEnv, "")
	empty, withTok := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(withTok, "tokenizer.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	modelDir := filepath.Join("..", "model", "testdata", "qwen2_tiny")
	tiny := ModelOptions{Model: "tiny"}
	check := func(what string, got TokenizerChoice, path, from string) {
		t.Helper()
		if got.Path != path || got.From != from {
			t.Errorf("%s: %+v, want %q from %q", what, got, path, from)
		}
	}
	check("built in", FindTokenizer(tiny, empty), "", "built in")
	if !FindTokenizer(tiny, empty).Bytes() || !strings.Contains(FindTokenizer(tiny, empty).String(), "$T2M_TOKENIZER") {
		t.Errorf("the byte tokenizer's description: %s", FindTokenizer(tiny, empty))
	}
	check("data dir", FindTokenizer(tiny, withTok), filepath.Join(withTok, "tokenizer.json"), "--data-dir")
	check("flag", FindTokenizer(ModelOptions{Model: "tiny", Tokenizer: "x.json"}, withTok), "x.json", "--tokenizer")
	check("model dir", FindTokenizer(ModelOptions{Model: modelDir}, withTok), filepath.Join(modelDir, "tokenizer.json"), "the model directory")
	t.Setenv(TokenizerEnv, "/env/tokenizer.json")
	check("env", FindTokenizer(tiny, withTok), "/env/tokenizer.json", "$T2M_TOKENIZER")
	check("flag over env", FindTokenizer(ModelOptions{Model: "tiny", Tokenizer: "x.json"}, withTok), "x.json", "--tokenizer")
}

// A --max-len that drops every training example says what to change.
func TestTrainAllDroppedSaysWhy(t *testing.T) {
	t.Setenv(TokenizerEnv, "")
	o := quickOptions(t, writeSplits(t))
	o.MaxLen = 64
	_, err := Train(o)
	if err == nil || !strings.Contains(err.Error(), "all 2 training examples were dropped") ||
		!strings.Contains(err.Error(), "pass --max-len 2048") {
		t.Errorf("err %v", err)
	}
}
