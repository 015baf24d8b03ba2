package pipeline

import (
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/internal/bf16"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/safetensors"
)

// qwenTokenizer is the real Qwen2.5 tokenizer.json beside the repository.
const qwenTokenizer = "../../shared/tokenizers/qwen2.5/tokenizer.json"

// tinyAdapter saves a rank-4 adapter of the tiny model with non-zero B (a fresh adapter's B is 0, which
// would make any merge look right) into dir, for cfg's shape, and returns it as the model applies it.
func tinyAdapter(t *testing.T, dir string, cfg model.Config) *model.LoRAParams {
	t.Helper()
	a, err := lora.New(lora.Config{R: 4, BaseModel: "tiny"}, cfg.NumLayers, cfg.LoRADims(), 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	for _, p := range a.Pairs {
		for i := range p.B {
			p.B[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(a)
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

// tinyBase is the built-in tiny model's weights.
func tinyBase(t *testing.T) *model.Weights {
	t.Helper()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.RandomWeights(reg.Config, reg.Seed, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// t2m merge of the tiny model: shards under the size limit with an index, config.json, the tokenizer
// copied; every tensor is bf16(W + s·B·A) exactly, and the merged model's logits equal the base model's
// with the adapter applied unmerged within bf16 rounding.
func TestMergeTiny(t *testing.T) {
	tmp := t.TempDir()
	base := tinyBase(t)
	lp := tinyAdapter(t, filepath.Join(tmp, "adapter"), base.Config)
	out := filepath.Join(tmp, "merged")
	res, err := Merge(MergeOptions{Model: "tiny", Adapter: filepath.Join(tmp, "adapter"), Tokenizer: qwenTokenizer,
		Out: out, ShardBytes: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	// The embedding and lm_head (19.5 MB of bf16 each) exceed 10 MB: each has a shard of its own.
	if len(res.Shards) != 3 || res.Rank != 4 || res.Scaling != 2 || len(res.Copied) != 1 {
		t.Errorf("result %+v: want 3 shards, r 4, scaling 2, tokenizer.json copied", res)
	}
	var index struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(filepath.Join(out, safetensors.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil || index.Metadata["total_size"] != res.Bytes || len(index.WeightMap) != res.Tensors {
		t.Fatalf("index %s: %v", raw, err)
	}
	cfg, err := model.LoadConfig(out)
	if err != nil || cfg != withDtype(base.Config, "bfloat16") {
		t.Fatalf("config.json: %+v, %v; want %+v", cfg, err, base.Config)
	}
	merged, err := model.LoadDir(out, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int32{151644, 8948, 198, 2610, 525, 264, 220, 151645, 198}
	want, err := model.Logits(base, lp, ids, 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	if err := base.MergeLoRA(lp); err != nil {
		t.Fatal(err)
	}
	exp, err := base.FloatTensors()
	if err != nil {
		t.Fatal(err)
	}
	gotTs, err := merged.FloatTensors()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range exp {
		for j, v := range e.Data {
			if r := bf16.ToFloat32(bf16.FromFloat32(v)); gotTs[i].Data[j] != r {
				t.Fatalf("%s[%d] = %v, want bf16(%v) = %v", e.Name, j, gotTs[i].Data[j], v, r)
			}
		}
	}
	got, err := model.Logits(merged, nil, ids, 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	if d := numtest.RelL2(got, want); d > 1.5e-2 { // bf16 rounding of every weight: 8.2e-3 here
		t.Errorf("merged bf16 model vs base+adapter: logits rel L2 %.2e", d)
	}
	t.Logf("merged bf16 vs base+adapter (f32): logits rel L2 %.2e", numtest.RelL2(got, want))
}

// withDtype is c as config.json with that dtype reads back.
func withDtype(c model.Config, dtype string) model.Config {
	c.Dtype = dtype
	return c
}

// Bad requests are clear errors and leave an existing output as it was.
func TestMergeRefuses(t *testing.T) {
	tmp := t.TempDir()
	base := tinyBase(t)
	adapter := filepath.Join(tmp, "adapter")
	tinyAdapter(t, adapter, base.Config)
	out := filepath.Join(tmp, "merged")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(out, "keep.txt")
	if err := os.WriteFile(keep, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := base.Config
	other.HiddenSize, other.HeadDim = 32, 8
	otherAdapter := filepath.Join(tmp, "other")
	tinyAdapter(t, otherAdapter, other)
	for _, tc := range []struct {
		opts MergeOptions
		want string
	}{
		{MergeOptions{Model: "tiny", Adapter: filepath.Join(tmp, "nope"), Out: out}, "nope"},
		{MergeOptions{Model: "tiny", Adapter: otherAdapter, Out: out}, "other"},
		{MergeOptions{Model: "tiny", Adapter: adapter, Out: adapter}, "would replace"},
		{MergeOptions{Model: "tiny", Out: out}, "--adapter"},
		{MergeOptions{Model: "qwen2.5-coder-7b", Adapter: adapter, Out: out}, "no built-in weights"},
		{MergeOptions{Model: "tiny", Adapter: adapter, Out: out, Tokenizer: filepath.Join(tmp, "none.json")}, "none.json"},
	} {
		_, err := Merge(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "merge:") {
			t.Errorf("%+v: %v, want a merge: error naming %q", tc.opts, err, tc.want)
		}
		if b, err := os.ReadFile(keep); err != nil || string(b) != "old" {
			t.Fatalf("%+v: the existing output changed: %q, %v", tc.opts, b, err)
		}
	}
}
