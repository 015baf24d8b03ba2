//go:build t2mcuda

// Package cudatest holds what the tests of gpu/... share: the test device (skipping a test where there is no
// usable GPU), arenas freed when a test ends, random LoRA adapters and micro-batches. Only tests import it.
package cudatest

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/model"
)

var (
	testDev     *cuda.Device
	testDevErr  error
	testDevOnce sync.Once
)

// Device returns the shared test device (GPU 0, opened once per test binary) bound to the calling
// goroutine, or skips the test with the reason when there is no usable GPU.
func Device(t testing.TB) *cuda.Device {
	t.Helper()
	testDevOnce.Do(func() { testDev, testDevErr = cuda.Open(0) })
	if testDevErr != nil {
		t.Skipf("no GPU: %v", testDevErr)
	}
	if err := testDev.Bind(); err != nil {
		t.Fatal(err)
	}
	return testDev
}

// Arena returns a fresh arena of bytes from the test device, freed when the test ends.
func Arena(t testing.TB, d *cuda.Device, bytes int64) *cuda.Arena {
	t.Helper()
	a, err := cuda.NewArena(d, bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Free(); err != nil {
			t.Error(err)
		}
	})
	return a
}

// RandomLoRA gives every projection of w a random adapter of rank r (N(0, 0.1²); B non-zero, so the branch
// counts): model.RandomLoRA.
func RandomLoRA(w *model.Weights, r int, rng *rand.Rand) *model.LoRAParams {
	return model.RandomLoRA(w, r, 0.1, rng.NormFloat64)
}

// CompletionBatch is a random micro-batch [rows, seq] of token ids below vocab with the loss on the second
// half of each sequence (completion-only labels); with pad > 0 and two rows or more, the last pad positions of
// row 1 are right padding (mask 0, label −100).
func CompletionBatch(rng *rand.Rand, rows, seq, vocab, pad int) model.Batch {
	n := rows * seq
	b := model.Batch{IDs: make([]int32, n), Labels: make([]int32, n), Mask: make([]int32, n)}
	for i := range n {
		b.IDs[i] = int32(rng.IntN(vocab))
		b.Labels[i], b.Mask[i] = b.IDs[i], 1
		padded := i/seq == 1 && i%seq >= seq-pad
		if i%seq < seq/2 || padded {
			b.Labels[i] = -100
		}
		if padded {
			b.Mask[i] = 0
		}
	}
	return b
}

// Millis runs f n times on d's stream between two events and returns the device milliseconds per run
// (benchmarks).
func Millis(t testing.TB, d *cuda.Device, n int, f func() error) float64 {
	t.Helper()
	start, err := d.Record()
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	end, err := d.Record()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := start.Millis(end)
	if err != nil {
		t.Fatal(err)
	}
	return ms / float64(n)
}

// TinyLoRA is the registered tiny Qwen2 with random NF4 weights (its registry seed) and a random LoRA of
// the given rank and dropout on every projection (RandomLoRA from rng).
func TinyLoRA(t testing.TB, rng *rand.Rand, rank int, dropout float32) (*model.Weights, *model.LoRAParams) {
	t.Helper()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.RandomWeights(reg.Config, reg.Seed, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	lp := RandomLoRA(w, rank, rng)
	lp.Dropout = dropout
	return w, lp
}
