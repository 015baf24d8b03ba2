package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/safetensors"
)

func TestParseConfigBothGenerations(t *testing.T) {
	classic := `{"model_type":"qwen2","hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,
	"num_attention_heads":28,"num_key_value_heads":4,"vocab_size":152064,"rms_norm_eps":1e-06,
	"rope_theta":1000000.0,"torch_dtype":"bfloat16","tie_word_embeddings":false,"max_position_embeddings":32768}`
	v5 := `{"model_type":"qwen2","hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,
	"num_attention_heads":28,"num_key_value_heads":4,"vocab_size":152064,"rms_norm_eps":1e-06,
	"rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"},"dtype":"bfloat16",
	"tie_word_embeddings":false,"max_position_embeddings":32768}`
	reg, err := Lookup("qwen2.5-coder-7b")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"classic": classic, "v5": v5} {
		c, err := ParseConfig(name, []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c != reg.Config {
			t.Errorf("%s: parsed %+v, registry has %+v", name, c, reg.Config)
		}
		if c.HeadDim != 128 {
			t.Errorf("%s: head_dim %d derived, want 3584/28 = 128", name, c.HeadDim)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"model_type":"llama"}`: "only qwen2",
		`{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2,"vocab_size":8}`: "multiple",
		`{"hidden_size":64}`:          "intermediate_size",
		`not json`:                    "not a valid config.json",
		`{"hidden_act":"gelu"}`:       "only silu",
		`{"use_sliding_window":true}`: "sliding-window",
	} {
		_, err := ParseConfig("x/config.json", []byte(body))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "x/config.json") {
			t.Errorf("ParseConfig(%s) error %v, want one naming the file and %q", body, err, want)
		}
	}
}

func TestFixtureConfig(t *testing.T) {
	c, err := LoadConfig(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{HiddenSize: 64, IntermediateSize: 128, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		VocabSize: 256, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 128, Dtype: "bfloat16"}
	if c != want {
		t.Errorf("fixture config %+v, want %+v", c, want)
	}
}

func TestRegistry(t *testing.T) {
	tiny, err := Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if c := tiny.Config; c.NumHeads/c.NumKVHeads < 2 || c.TieWordEmbeddings {
		t.Errorf("tiny must have GQA ≥ 2 and an untied lm_head: %+v", c)
	}
	if _, err := Lookup("nope"); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("unknown model error %v should list the registry", err)
	}
}

// TestLoadWeightsErrors writes checkpoints with a missing and a mis-shaped tensor.
func TestLoadWeightsErrors(t *testing.T) {
	cfg := Config{HiddenSize: 8, IntermediateSize: 16, NumLayers: 1, NumHeads: 2, NumKVHeads: 1, HeadDim: 4,
		VocabSize: 10, RMSNormEps: 1e-6, RopeTheta: 10000}
	w, err := RandomWeights(cfg, 1, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tensors, err := w.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(ts []safetensors.Tensor) string {
		path := filepath.Join(dir, "model.safetensors")
		os.Remove(path)
		if err := safetensors.Write(path, ts, nil); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write(tensors)
	got, err := LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{})
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if numtest.MaxAbsRel(got.Layers[0].Q.W.F32, w.Layers[0].Q.W.F32) != 0 || numtest.MaxAbsRel(got.LMHead.F32, w.LMHead.F32) != 0 {
		t.Error("round-tripped weights differ")
	}
	var missing []safetensors.Tensor
	for _, ts := range tensors {
		if ts.Name != "model.layers.0.self_attn.k_proj.bias" {
			missing = append(missing, ts)
		}
	}
	write(missing)
	_, err = LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "model.layers.0.self_attn.k_proj.bias") || !strings.Contains(err.Error(), dir) {
		t.Errorf("missing tensor: error %v should name the tensor and the checkpoint", err)
	}
	bad := append([]safetensors.Tensor(nil), tensors...)
	for i, ts := range bad {
		if ts.Name == "model.layers.0.mlp.up_proj.weight" {
			bad[i].Shape = []int{ts.Shape[1], ts.Shape[0]}
		}
	}
	write(bad)
	_, err = LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "up_proj.weight has shape [8 16]") {
		t.Errorf("transposed tensor: error %v should give the tensor and both shapes", err)
	}
}

func mustOpen(t *testing.T, dir string) safetensors.Reader {
	t.Helper()
	r, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestTiedEmbeddings loads a checkpoint without lm_head.weight for a tied config: lm_head is the
// embedding table (the same memory) and the logits are h·Eᵀ.
func TestTiedEmbeddings(t *testing.T) {
	cfg := Config{HiddenSize: 8, IntermediateSize: 16, NumLayers: 1, NumHeads: 2, NumKVHeads: 1, HeadDim: 4,
		VocabSize: 10, RMSNormEps: 1e-6, RopeTheta: 10000, TieWordEmbeddings: true}
	w, err := RandomWeights(cfg, 2, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := w.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.Name == nameLMHead {
			t.Fatal("a tied model wrote lm_head.weight")
		}
	}
	dir := t.TempDir()
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	got, err := LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.LMHead != got.Embed {
		t.Error("tied lm_head does not share the embedding table")
	}
}
