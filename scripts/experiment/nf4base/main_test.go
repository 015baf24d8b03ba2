package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// TestRoundTrip: a projection comes back as bf16 of t2m's quantize → dequantize (and so differs from the
// original), every other tensor and file byte for byte.
func TestRoundTrip(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, 16*128)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * 0.05
	}
	emb := make([]float32, 4*128)
	for i := range emb {
		emb[i] = float32(i) / 512
	}
	const proj, table = "model.layers.3.mlp.down_proj.weight", "model.embed_tokens.weight"
	src := []safetensors.Tensor{safetensors.BF16Tensor(proj, []int{16, 128}, w), safetensors.BF16Tensor(table, []int{4, 128}, emb),
		safetensors.BF16Tensor("model.layers.3.self_attn.q_proj.bias", []int{128}, emb[:128])}
	if err := safetensors.Write(filepath.Join(in, safetensors.SingleFile), src, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "config.json"), []byte(`{"model_type": "qwen2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := run(in, out)
	if err != nil || n != 1 {
		t.Fatalf("run: %d projections, %v; want 1", n, err)
	}
	r, err := safetensors.OpenDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	orig := make([]float32, len(w))
	if err := safetensors.DecodeFloat32(safetensors.BF16, src[0].Data, orig); err != nil {
		t.Fatal(err)
	}
	q, err := quant.Quantize(orig, []int{16, 128})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Raw(proj)
	if err != nil {
		t.Fatal(err)
	}
	if want := safetensors.BF16Bytes(q.Dequantize()); !bytes.Equal(got, want) {
		t.Errorf("%s is not bf16(dequantize(quantize(w)))", proj)
	}
	if bytes.Equal(got, src[0].Data) {
		t.Errorf("%s came back unchanged: not quantized", proj)
	}
	for _, s := range src[1:] {
		b, err := r.Raw(s.Name)
		if err != nil || !bytes.Equal(b, s.Data) {
			t.Errorf("%s not copied byte for byte (%v)", s.Name, err)
		}
	}
	if cfg, err := os.ReadFile(filepath.Join(out, "config.json")); err != nil || string(cfg) != `{"model_type": "qwen2"}` {
		t.Errorf("config.json not copied: %q, %v", cfg, err)
	}
}

// TestNoProjections: a checkpoint without Qwen2 projections is an error, not a silent copy.
func TestNoProjections(t *testing.T) {
	in := t.TempDir()
	src := []safetensors.Tensor{safetensors.F32Tensor("wte", []int{2, 2}, []float32{1, 2, 3, 4})}
	if err := safetensors.Write(filepath.Join(in, safetensors.SingleFile), src, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := run(in, t.TempDir()); err == nil {
		t.Fatal("no error for a checkpoint without projections")
	}
}
