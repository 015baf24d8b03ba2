package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/safetensors"
)

// writeSmallBase writes a model directory laid out as scripts/experiment/make_small_base.py writes its base:
// config.json with the classic Qwen2 keys and tie_word_embeddings true, the vocabulary padded to 151,936
// as Qwen does (the tokenizer has 151,665 ids), one model.safetensors of bf16 tensors under Hugging Face's
// names without lm_head.weight (a tied model's save_pretrained drops it), and the real tokenizer.json.
// The shape is scaled down (hidden 96, 2 layers, 6 heads over 2 KV heads) to run on the CPU.
func writeSmallBase(t *testing.T, dir string) model.Config {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgJSON := map[string]any{
		"architectures": []string{"Qwen2ForCausalLM"}, "attention_dropout": 0.0, "bos_token_id": 151643,
		"eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 96, "initializer_range": 0.02,
		"intermediate_size": 256, "max_position_embeddings": 1024, "max_window_layers": 2, "model_type": "qwen2",
		"num_attention_heads": 6, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
		"rope_scaling": nil, "rope_theta": 10000.0, "sliding_window": nil, "tie_word_embeddings": true,
		"torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
		"vocab_size": 151936,
	}
	b, err := json.MarshalIndent(cfgJSON, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "config.json"), string(b))
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	normal := func(n int, mean, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		return v
	}
	H, I, V, Q, KV := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize, cfg.QDim(), cfg.KVDim()
	ts := []safetensors.Tensor{
		safetensors.BF16Tensor("model.embed_tokens.weight", []int{V, H}, normal(V*H, 0, 0.02)),
		safetensors.BF16Tensor("model.norm.weight", []int{H}, normal(H, 1, 0.01)),
	}
	for l := range cfg.NumLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		for _, s := range []struct {
			name    string
			out, in int
			bias    bool
		}{{"self_attn.q_proj", Q, H, true}, {"self_attn.k_proj", KV, H, true}, {"self_attn.v_proj", KV, H, true},
			{"self_attn.o_proj", H, Q, false}, {"mlp.gate_proj", I, H, false}, {"mlp.up_proj", I, H, false}, {"mlp.down_proj", H, I, false}} {
			ts = append(ts, safetensors.BF16Tensor(p+s.name+".weight", []int{s.out, s.in}, normal(s.out*s.in, 0, 0.02)))
			if s.bias {
				ts = append(ts, safetensors.BF16Tensor(p+s.name+".bias", []int{s.out}, normal(s.out, 0, 0.02)))
			}
		}
		ts = append(ts, safetensors.BF16Tensor(p+"input_layernorm.weight", []int{H}, normal(H, 1, 0.01)),
			safetensors.BF16Tensor(p+"post_attention_layernorm.weight", []int{H}, normal(H, 1, 0.01)))
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(qwenTokenizer)
	if err != nil {
		t.Fatalf("%v (the shared material must be checked out beside the repository)", err)
	}
	writeFile(t, filepath.Join(dir, "tokenizer.json"), string(tok))
	return cfg
}

// The experiment's base model (issue 12, scripts/experiment): a directory in make_small_base.py's layout —
// tied embeddings, bf16, a padded vocabulary, the real tokenizer — goes through baseline, train (NF4 by
// default for a directory, as the experiment runs it) and eval with its adapter.
func TestSmallBaseDirectoryEndToEnd(t *testing.T) {
	dir := t.TempDir()
	base, dataDir, runs := filepath.Join(dir, "small-base"), filepath.Join(dir, "data"), filepath.Join(dir, "runs")
	cfg := writeSmallBase(t, base)
	if !cfg.TieWordEmbeddings || cfg.VocabSize != 151936 || cfg.RopeTheta != 10000 || cfg.Dtype != "bfloat16" {
		t.Fatalf("config read as %+v", cfg)
	}
	w, err := model.LoadDir(base, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	if w.LMHead != w.Embed {
		t.Error("the tied lm_head is not the embedding table")
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dataDir)
	common := []string{"--model", base, "--data-dir", dataDir, "--output-dir", runs, "--limit", "2", "--device", "cpu"}
	gen := []string{"--max-new-tokens", "4"}
	if msg, err := runApp(t, append(append([]string{"baseline", "--run-name", "small_baseline"}, gen...), common...)...); err != nil {
		t.Fatalf("baseline: %v\n%s", err, msg)
	}
	msg, err := runApp(t, append([]string{"train", "--epochs", "1", "--batch-size", "1", "--grad-accum", "1", "--run-name", "small_r8"}, common...)...)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, msg)
	}
	for _, want := range []string{"step 2/2", "adapter saved"} {
		if !strings.Contains(msg, want) {
			t.Errorf("train output lacks %q:\n%s", want, msg)
		}
	}
	var tc struct {
		Provenance struct {
			Settings struct {
				Quantization string `json:"quantization"`
			} `json:"settings"`
		} `json:"provenance"`
	}
	raw, err := os.ReadFile(filepath.Join(runs, "small_r8", "training_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &tc); err != nil || tc.Provenance.Settings.Quantization != "nf4" {
		t.Errorf("training_config.json: quantization %q (%v), want nf4 (auto for a directory)", tc.Provenance.Settings.Quantization, err)
	}
	if msg, err := runApp(t, append(append([]string{"eval", "--adapter", filepath.Join(runs, "small_r8", "adapter")}, gen...), common...)...); err != nil {
		t.Fatalf("eval: %v\n%s", err, msg)
	}
	for _, run := range []string{"small_baseline", "small_r8"} {
		for _, split := range []string{"eval", "held_out"} {
			rep, err := eval.ReadReport(filepath.Join(runs, run, split+"_report.json"))
			if err != nil {
				t.Fatalf("%s/%s: %v", run, split, err)
			}
			if rep.Provenance == nil || rep.Provenance.Model == nil || rep.Provenance.Model.Path == "" {
				t.Errorf("%s/%s: provenance names no model directory: %+v", run, split, rep.Provenance)
			}
		}
	}
	msg, err = runApp(t, "compare", "--output-dir", runs)
	if err != nil || !strings.Contains(msg, "small_r8") || !strings.Contains(msg, "small_baseline") {
		t.Errorf("compare: %v\n%s", err, msg)
	}
}
