package model

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"github.com/t2m/t2m/safetensors"
)

// writeBF16Checkpoint writes w's tensors as bf16 (as a Hugging Face bf16 checkpoint stores them) into a new
// directory, or as float32 when asF32.
func writeBF16Checkpoint(t *testing.T, w *Weights, asF32 bool) string {
	t.Helper()
	ts, err := w.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	if !asF32 {
		for i, x := range ts {
			v := make([]float32, len(x.Data)/4)
			for j := range v {
				b := x.Data[4*j : 4*j+4]
				v[j] = math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
			}
			ts[i] = safetensors.BF16Tensor(x.Name, x.Shape, v)
		}
	}
	dir := t.TempDir()
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// LoadOptions.BF16Tables keeps a bf16 checkpoint's embedding and lm_head as bf16 (tied: one table), and the
// model computes exactly what it computes with them widened to float32: the same logits from the graph, the
// same prefill logits and greedy tokens from the CPU generator. A float32 checkpoint's tables stay float32.
func TestBF16Tables(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg := smallConfig()
		cfg.TieWordEmbeddings = tied
		src, err := RandomWeights(cfg, 31, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := writeBF16Checkpoint(t, src, false)
		wide, err := LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		narrow, err := LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{BF16Tables: true})
		if err != nil {
			t.Fatal(err)
		}
		if narrow.Embed.BF16 == nil || narrow.Embed.F32 != nil || wide.Embed.F32 == nil || wide.Embed.BF16 != nil {
			t.Fatalf("tied %v: embedding storage bf16 %v/f32 %v with BF16Tables, bf16 %v/f32 %v without", tied,
				narrow.Embed.BF16 != nil, narrow.Embed.F32 != nil, wide.Embed.BF16 != nil, wide.Embed.F32 != nil)
		}
		if tied != (narrow.LMHead == narrow.Embed) || (!tied && narrow.LMHead.BF16 == nil) {
			t.Fatalf("tied %v: lm_head is the embedding %v, bf16 %v", tied, narrow.LMHead == narrow.Embed, narrow.LMHead.BF16 != nil)
		}
		if d, _ := narrow.Embed.Dense(); !slices.Equal(d, wide.Embed.F32) {
			t.Fatalf("tied %v: the bf16 table widened differs from the float32 load", tied)
		}
		ids := randomIDs(12, cfg.VocabSize, 5)
		lw, err := Logits(wide, nil, ids, 2, 6)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := Logits(narrow, nil, ids, 2, 6)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(lw, ln) {
			t.Errorf("tied %v: graph logits differ with bf16 tables", tied)
		}
		gw, err := NewGenerator(wide, nil)
		if err != nil {
			t.Fatal(err)
		}
		gn, err := NewGenerator(narrow, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, pw, err := gw.Prefill(ids[:7], 16)
		if err != nil {
			t.Fatal(err)
		}
		_, pn, err := gn.Prefill(ids[:7], 16)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pw, pn) {
			t.Errorf("tied %v: generator prefill logits differ with bf16 tables", tied)
		}
		ow, err := gw.Generate([][]int32{ids[:5], ids[3:9]}, GenerateOptions{MaxNewTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		on, err := gn.Generate([][]int32{ids[:5], ids[3:9]}, GenerateOptions{MaxNewTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		for i := range ow {
			if !slices.Equal(ow[i], on[i]) {
				t.Errorf("tied %v, prompt %d: %v with bf16 tables, %v with float32", tied, i, on[i], ow[i])
			}
		}
	}
	// A float32 checkpoint keeps float32 tables: bf16 would round them.
	cfg := smallConfig()
	src, err := RandomWeights(cfg, 32, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := writeBF16Checkpoint(t, src, true)
	w, err := LoadWeights(mustOpen(t, dir), dir, cfg, LoadOptions{BF16Tables: true})
	if err != nil {
		t.Fatal(err)
	}
	if w.Embed.F32 == nil || w.LMHead.F32 == nil || !slices.Equal(w.Embed.F32, src.Embed.F32) {
		t.Errorf("a float32 checkpoint's tables were not kept as float32")
	}
}

// With BF16Tables, LoadDir's tables view the checkpoint's mapping (no copy: their memory is the mapping's),
// LoadDir keeps the mapping open for them until Weights.Close, and Evict leaves the values readable (read
// again from the file). Weights without views have nothing to close.
func TestBF16TablesViewTheMapping(t *testing.T) {
	cfg := smallConfig()
	src, err := RandomWeights(cfg, 33, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := writeBF16Checkpoint(t, src, false)
	js, err := cfg.HFConfigJSON("bfloat16")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := LoadDir(dir, LoadOptions{BF16Tables: true})
	if err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, dir)
	raw, err := r.Raw(nameEmbed)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint16, len(raw)/2)
	for i := range want {
		want[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
	}
	if !w.views || w.mapping == nil {
		t.Fatal("LoadDir did not keep the checkpoint open for the bf16 tables")
	}
	own, err := w.mapping.(safetensors.Reader).Raw(nameEmbed)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.Pointer(&own[0]) != unsafe.Pointer(&w.Embed.BF16[0]) {
		t.Error("the bf16 embedding is a copy, not a view of the mapping")
	}
	for _, f := range []*Frozen{w.Embed, w.LMHead} {
		if f.evict == nil {
			t.Errorf("%s: no Evict for a view of the mapping", f.Name)
		}
		if err := f.Evict(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(w.Embed.BF16, want) {
		t.Error("the embedding's bf16 values after Evict differ from the checkpoint's")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.mapping != nil {
		t.Error("Close left the mapping")
	}
	plain, err := LoadDir(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.views || plain.mapping != nil || plain.Embed.Evict() != nil || plain.Close() != nil {
		t.Error("float32 tables hold the mapping")
	}
}
