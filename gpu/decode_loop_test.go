package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/t2m/t2m/model"
)

// cpuSteps is decodeSteps over model.Generator's Prefill and Step (the CPU twin of the GPU decoder).
type cpuSteps struct {
	g        *model.Generator
	caches   []*model.KVCache
	capacity int
	V        int
}

func (c *cpuSteps) begin(seqs, capacity int) error {
	c.caches, c.capacity = make([]*model.KVCache, seqs), capacity
	return nil
}

func (c *cpuSteps) prefill(prompts [][]int32) ([]int32, error) {
	next := make([]int32, len(prompts))
	for i, p := range prompts {
		kv, logits, err := c.g.Prefill(p, c.capacity)
		if err != nil {
			return nil, err
		}
		c.caches[i], next[i] = kv, model.Argmax(logits)
	}
	return next, nil
}

func (c *cpuSteps) step(seqs, ids, pos []int32) ([]int32, error) {
	cs := make([]*model.KVCache, len(seqs))
	for r, s := range seqs {
		if cs[r] = c.caches[s]; int32(cs[r].Len) != pos[r] {
			return nil, fmt.Errorf("row %d: position %d, cache holds %d tokens", r, pos[r], cs[r].Len)
		}
		if pos[r] >= int32(c.capacity) {
			return nil, fmt.Errorf("row %d: position %d past the capacity %d", r, pos[r], c.capacity)
		}
	}
	logits, err := c.g.Step(cs, ids)
	if err != nil {
		return nil, err
	}
	next := make([]int32, len(seqs))
	for r := range next {
		next[r] = model.Argmax(logits[r*c.V : (r+1)*c.V])
	}
	return next, nil
}

func (c *cpuSteps) end() {}

// TestGenerateGreedyLoop checks generateGreedy's loop (stop ids, the token budget, live rows, positions,
// capacity) against model.Generator.Generate on the tiny model: the same executor under both loops must give
// the same tokens.
func TestGenerateGreedyLoop(t *testing.T) {
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.RandomWeights(reg.Config, reg.Seed, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	prompts := make([][]int32, 4)
	for i := range prompts {
		prompts[i] = make([]int32, 3+5*i)
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(reg.Config.VocabSize))
		}
	}
	free, err := g.Generate(prompts, model.GenerateOptions{MaxNewTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	// Stop ids that end some sequences early: the 3rd token of prompt 0 and the 1st of prompt 2.
	stops := []int32{free[0][2], free[2][0]}
	for _, opt := range []model.GenerateOptions{{MaxNewTokens: 6}, {MaxNewTokens: 1}, {MaxNewTokens: 6, StopIDs: stops}} {
		var wantDone, gotDone []int
		opt.Progress = func(done int, _ time.Duration) { wantDone = append(wantDone, done) }
		want, err := g.Generate(prompts, opt)
		if err != nil {
			t.Fatal(err)
		}
		opt.Progress = func(done int, _ time.Duration) { gotDone = append(gotDone, done) }
		got, err := generateGreedy(&cpuSteps{g: g, V: reg.Config.VocabSize}, prompts, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotDone, wantDone) {
			t.Errorf("max %d stops %v: progress calls %v, want %v", opt.MaxNewTokens, opt.StopIDs, gotDone, wantDone)
		}
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("max %d stops %v: prompt %d: got %v, want %v", opt.MaxNewTokens, opt.StopIDs, i, got[i], want[i])
			}
		}
	}
	if _, err := generateGreedy(&cpuSteps{g: g, V: reg.Config.VocabSize}, [][]int32{{1}, {}}, model.GenerateOptions{}); err == nil {
		t.Error("an empty prompt gave no error")
	}
}
