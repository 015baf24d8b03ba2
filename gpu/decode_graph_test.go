//go:build t2mcuda

package gpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/model"
)

// TestGPUDecodeGraphs generates greedily on the tiny Qwen2 with steps run as CUDA graphs and eagerly (two
// decoders over the same weights): 5 prompts in 3 slots (continuous batching: steps of 3 rows, then fewer as
// prompts end and refill), 12 new tokens each. The graphs replay the eager launches, so every step's logits
// must be equal bit for bit and the tokens identical; and graphs must have run (a capture that failed would
// turn them off and pass the comparison eagerly).
func TestGPUDecodeGraphs(t *testing.T) {
	const rows = 40
	run := func(graphs bool) ([][]int32, [][]float32, *stepGraphs) {
		dec, w := tinyDecoder(t, rows)
		if graphs != (dec.steps != nil) {
			if graphs {
				dec.steps = &stepGraphs{}
			} else {
				dec.steps = nil
			}
		}
		out, logits := generateLogged(t, dec, w.Config.VocabSize)
		return out, logits, dec.steps
	}
	wantOut, wantLogits, _ := run(false)
	gotOut, gotLogits, s := run(true)
	if s.off != nil {
		t.Fatalf("graphs turned off: %v", s.off)
	}
	if s.replayed == 0 {
		t.Fatal("no step ran from a graph")
	}
	t.Logf("%d of the steps ran from %d graphs", s.replayed, len(s.graphs))
	sameGeneration(t, "graphs", gotOut, wantOut, gotLogits, wantLogits)
}

// generateLogged generates greedily on dec: 5 random prompts (a fixed seed) of 3 to 11 tokens of a vocabulary of
// V, in 3 slots (continuous batching: steps of 3 rows, then fewer as prompts end and refill), 12 new tokens each.
// It returns the tokens and every forward's logits [rows·V] as the decoder handed them over.
func generateLogged(t *testing.T, dec *decoder, V int) ([][]int32, [][]float32) {
	t.Helper()
	var logits [][]float32
	dec.onLogits = func(seqs []int32, lb cuda.Buffer, m int) error {
		v := make([]float32, m*V)
		if err := cuda.Download(dec.d, v, lb); err != nil {
			return err
		}
		logits = append(logits, v)
		return nil
	}
	rng := rand.New(rand.NewPCG(9, 10))
	prompts := make([][]int32, 5)
	for i := range prompts {
		prompts[i] = make([]int32, 3+rng.IntN(9))
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(V))
		}
	}
	out, err := model.GenerateGreedy(dec, prompts, model.GenerateOptions{MaxNewTokens: 12, Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	return out, logits
}

// sameGeneration fails t unless two generations (generateLogged's results, with and without what) have the same
// tokens and the same logits bit for bit in every forward.
func sameGeneration(t *testing.T, what string, gotOut, wantOut [][]int32, gotLogits, wantLogits [][]float32) {
	t.Helper()
	for i := range wantOut {
		if !slices.Equal(gotOut[i], wantOut[i]) {
			t.Errorf("prompt %d: tokens %v with %s, %v without", i, gotOut[i], what, wantOut[i])
		}
	}
	if len(gotLogits) != len(wantLogits) {
		t.Fatalf("%d forwards with %s, %d without", len(gotLogits), what, len(wantLogits))
	}
	for k := range wantLogits {
		if !slices.Equal(gotLogits[k], wantLogits[k]) {
			t.Errorf("forward %d: logits differ with %s", k, what)
		}
	}
}
