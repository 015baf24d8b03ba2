package quant

import (
	"math/rand"
	"testing"
)

// BenchmarkQuantize7BUpProj quantizes a Qwen2.5-7B up_proj-sized matrix
// ([18944, 3584] = 67.9M elements): go test -run - -bench Quantize7B ./quant
func BenchmarkQuantize7BUpProj(b *testing.B) {
	const out, in = 18944, 3584
	r := rand.New(rand.NewSource(1))
	w := make([]float32, out*in) // [out, in]
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}
	b.SetBytes(int64(len(w)) * 2) // as bf16 input
	b.ResetTimer()
	for range b.N {
		if _, err := Quantize(w, []int{out, in}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDequantize7BUpProj dequantizes the same matrix to float32.
func BenchmarkDequantize7BUpProj(b *testing.B) {
	const out, in = 18944, 3584
	r := rand.New(rand.NewSource(1))
	w := make([]float32, out*in) // [out, in]
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}
	q, err := Quantize(w, []int{out, in})
	if err != nil {
		b.Fatal(err)
	}
	w = nil
	b.ResetTimer()
	for range b.N {
		q.Dequantize()
	}
}
