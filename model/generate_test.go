package model

import (
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/t2m/t2m/internal/numtest"
)

// smallConfig is a Qwen2 shape small enough to run the graph many times in a test (GQA 2, biases).
func smallConfig() Config {
	return Config{HiddenSize: 32, IntermediateSize: 48, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		VocabSize: 97, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 512, Dtype: "float32"}
}

// randomLoRA adapts every projection with random A and non-zero B (N(0, 0.2²)), so the LoRA branch changes
// the logits.
func randomLoRA(w *Weights, rank int, seed int64) *LoRAParams {
	return RandomLoRA(w, rank, 0.2, rand.New(rand.NewSource(seed)).NormFloat64)
}

func randomIDs(n, vocab int, seed int64) []int32 {
	rng := rand.New(rand.NewSource(seed))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.Intn(vocab))
	}
	return ids
}

// The KV-cached prefill and steps give the graph's logits at every position. Tolerance 1e-5: both are
// fp32 from the same functions, only the attention of a step reads its keys from the cache. Checked for
// the base model, with LoRA, and with NF4 projections (both dequantize the same blocks).
func TestGeneratorMatchesGraphLogits(t *testing.T) {
	cfg := smallConfig()
	w, err := RandomWeights(cfg, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wq, err := RandomWeights(cfg, 3, LoadOptions{Quantize: QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	for ci, tc := range []struct {
		w    *Weights
		lora *LoRAParams
	}{{w, nil}, {w, randomLoRA(w, 4, 5)}, {wq, randomLoRA(wq, 4, 5)}} {
		w, lora := tc.w, tc.lora
		const T, prefix = 12, 5
		ids := randomIDs(T, cfg.VocabSize, 7)
		want, err := Logits(w, lora, ids, 1, T) // [T, V]
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewGenerator(w, lora)
		if err != nil {
			t.Fatal(err)
		}
		cache, got, err := g.Prefill(ids[:prefix], T)
		if err != nil {
			t.Fatal(err)
		}
		V := cfg.VocabSize
		row := func(t int) []float32 { return want[t*V : (t+1)*V] }
		if d := numtest.MaxMixed(got, row(prefix-1)); d > 1e-5 {
			t.Fatalf("case %d: prefill logits differ from the graph's by %g", ci, d)
		}
		for pos := prefix; pos < T; pos++ {
			got, err := g.Step([]*KVCache{cache}, ids[pos:pos+1])
			if err != nil {
				t.Fatal(err)
			}
			if d := numtest.MaxMixed(got, row(pos)); d > 1e-5 {
				t.Fatalf("case %d: cached step at position %d differs from the graph's logits by %g", ci, pos, d)
			}
		}
		if cache.Len != T {
			t.Errorf("cache holds %d tokens, want %d", cache.Len, T)
		}
	}
}

// greedyWithGraph decodes by re-running the whole graph on the growing sequence: the slow reference.
func greedyWithGraph(t *testing.T, w *Weights, lora *LoRAParams, prompt []int32, n int) []int32 {
	seq := slices.Clone(prompt)
	var out []int32
	V := w.Config.VocabSize
	for range n {
		logits, err := Logits(w, lora, seq, 1, len(seq))
		if err != nil {
			t.Fatal(err)
		}
		next := Argmax(logits[(len(seq)-1)*V:])
		out = append(out, next)
		seq = append(seq, next)
	}
	return out
}

// Batched generation over prompts of different lengths gives, for each, the tokens of greedy decoding
// with the full graph; a stop token ends a sequence and is not returned.
func TestGenerateBatchedEqualsGraphGreedy(t *testing.T) {
	cfg := smallConfig()
	w, err := RandomWeights(cfg, 11, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lora := randomLoRA(w, 2, 13)
	g, err := NewGenerator(w, lora)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int32{randomIDs(3, cfg.VocabSize, 1), randomIDs(9, cfg.VocabSize, 2), randomIDs(6, cfg.VocabSize, 3)}
	const n = 6
	var progress []int
	got, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: n, Progress: func(done, _ int, _ time.Duration) { progress = append(progress, done) }})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		want := greedyWithGraph(t, w, lora, p, n)
		if !slices.Equal(got[i], want) {
			t.Errorf("prompt %d: generated %v, graph greedy %v", i, got[i], want)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1] != len(prompts) {
		t.Errorf("progress calls %v, want ending at %d", progress, len(prompts))
	}
	// Stop at prompt 1's third token: it returns the two before it; the others are unaffected unless
	// they emit that token too.
	stopID := got[1][2]
	stopped, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: n, StopIDs: []int32{stopID}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		want := got[i]
		if k := slices.Index(want, stopID); k >= 0 {
			want = want[:k]
		}
		if !slices.Equal(stopped[i], want) {
			t.Errorf("with stop id %d, prompt %d: got %v, want %v", stopID, i, stopped[i], want)
		}
	}
}

func TestGeneratorBadInput(t *testing.T) {
	w, err := RandomWeights(smallConfig(), 1, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Prefill(nil, 4); err == nil {
		t.Error("empty prompt: no error")
	}
	if _, _, err := g.Prefill([]int32{1, 500}, 4); err == nil {
		t.Error("token id outside the vocabulary: no error")
	}
	bad := randomLoRA(w, 2, 1)
	bad.B["model.layers.0.self_attn.q_proj"] = nil
	if _, err := NewGenerator(w, bad); err == nil {
		t.Error("adapter missing a lora_B: no error")
	}
}
