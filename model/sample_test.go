package model

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// sampleGenerator is the small random model with a LoRA adapter, and three prompts of different lengths.
func sampleGenerator(t *testing.T) (*Generator, [][]int32) {
	t.Helper()
	cfg := smallConfig()
	w, err := RandomWeights(cfg, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(w, randomLoRA(w, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	return g, [][]int32{randomIDs(7, cfg.VocabSize, 1), randomIDs(3, cfg.VocabSize, 2), randomIDs(11, cfg.VocabSize, 3)}
}

func TestSamplingValidate(t *testing.T) {
	for _, s := range []Sampling{{-0.1, 1, 0}, {math.NaN(), 1, 0}, {math.Inf(1), 1, 0}, {1, 0, 0}, {1, 1.5, 0}, {1, -1, 0}, {1, math.NaN(), 0}} {
		err := s.Validate()
		if err == nil {
			t.Errorf("%+v: no error", s)
			continue
		}
		if !strings.Contains(err.Error(), "--temperature") && !strings.Contains(err.Error(), "--top-p") {
			t.Errorf("%+v: error %q names no flag", s, err)
		}
	}
	for _, s := range []Sampling{{0, 1, 0}, {0.7, 0.9, 1}, {2, 1, 5}} {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	g, prompts := sampleGenerator(t)
	if _, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: 4, Sampling: &Sampling{Temperature: -1, TopP: 1}}); err == nil {
		t.Error("Generate accepted temperature -1")
	}
}

// Temperature 0 is greedy whatever top-p and seed say, and a nucleus so small that it holds one token
// gives the argmax at any temperature: both equal plain greedy decoding.
func TestSamplingGreedyCases(t *testing.T) {
	g, prompts := sampleGenerator(t)
	want, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Sampling{{Temperature: 0, TopP: 0.5, Seed: 9}, {Temperature: 1.5, TopP: 1e-9, Seed: 9}} {
		got, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: 12, Sampling: &s})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("%+v prompt %d: %v, greedy %v", s, i, got[i], want[i])
			}
		}
	}
}

// The same seed gives the same tokens; another seed (at a temperature that flattens the distribution)
// gives others, and neither is the greedy output.
func TestSamplingSeed(t *testing.T) {
	g, prompts := sampleGenerator(t)
	run := func(seed uint64) [][]int32 {
		out, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: 16, Sampling: &Sampling{Temperature: 2, TopP: 0.95, Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	greedy, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: 16})
	if err != nil {
		t.Fatal(err)
	}
	same := func(x, y [][]int32) bool {
		return slices.EqualFunc(x, y, func(p, q []int32) bool { return slices.Equal(p, q) })
	}
	if !same(a, b) {
		t.Errorf("seed 7 twice: %v and %v", a, b)
	}
	if same(a, c) {
		t.Errorf("seeds 7 and 8 gave the same tokens %v", a)
	}
	if same(a, greedy) {
		t.Errorf("sampling at temperature 2 gave the greedy tokens %v", a)
	}
}

// The draws follow softmax(logits/T) within the nucleus: logits (0, ln 3, −inf) at T = 1 give ids 0 and 1
// at 1:3; top-p 0.5 keeps id 1 alone; T = 0.5 sharpens 1:3 to 1:9.
func TestSampleDistribution(t *testing.T) {
	logits := []float32{0, float32(math.Log(3)), float32(math.Inf(-1))}
	for _, tc := range []struct {
		temp, topP float64
		want1      float64 // expected share of id 1
	}{{1, 1, 0.75}, {1, 0.5, 1}, {0.5, 1, 0.9}} {
		p := &picker{s: Sampling{Temperature: tc.temp, TopP: tc.topP}}
		p2, err := newPicker(&cpuSteps{}, &Sampling{Temperature: tc.temp, TopP: tc.topP, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		p.rng = p2.rng
		const n = 20000
		counts := [3]int{}
		for range n {
			counts[p.sample(logits)]++
		}
		if counts[2] != 0 {
			t.Errorf("T %v top-p %v: drew the −inf id %d times", tc.temp, tc.topP, counts[2])
		}
		if got := float64(counts[1]) / n; math.Abs(got-tc.want1) > 0.015 {
			t.Errorf("T %v top-p %v: id 1 drawn %.3f of the time, want %.3f", tc.temp, tc.topP, got, tc.want1)
		}
	}
}

// greedyOnly is a DecodeSteps without logits.
type greedyOnly struct{ DecodeSteps }

func TestSamplingNeedsLogits(t *testing.T) {
	g, prompts := sampleGenerator(t)
	_, err := GenerateGreedy(greedyOnly{&cpuSteps{g: g}}, prompts, GenerateOptions{MaxNewTokens: 3, Sampling: &Sampling{Temperature: 1, TopP: 1}})
	if err == nil || !strings.Contains(err.Error(), "greedily only") {
		t.Fatalf("sampling over a greedy-only executor: %v", err)
	}
	got, err := GenerateGreedy(greedyOnly{&cpuSteps{g: g}}, prompts, GenerateOptions{MaxNewTokens: 3, Sampling: &Sampling{Temperature: 0, TopP: 1}})
	if err != nil || len(got) != len(prompts) {
		t.Fatalf("temperature 0 over a greedy-only executor: %v, %v", got, err)
	}
}
