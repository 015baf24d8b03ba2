//go:build t2mcuda

// Package cudatest holds what the tests of gpu/... share: the test device (skipping a test where there is no
// usable GPU), arenas freed when a test ends, and random LoRA adapters. Only tests import it.
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
