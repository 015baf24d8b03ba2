package quant

import (
	"math/rand"
	"testing"

	"github.com/t2m/t2m/safetensors"
)

// BenchmarkQuantize7BUpProj quantizes a Qwen2.5-7B up_proj-sized bf16 matrix
// ([18944, 3584] = 67.9M elements) from its raw bytes, as at model load:
// go test -run - -bench Quantize7B ./quant
func BenchmarkQuantize7BUpProj(b *testing.B) {
	const out, in = 18944, 3584
	r := rand.New(rand.NewSource(1))
	w := make([]float32, out*in) // [out, in]
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}
	raw := safetensors.BF16Bytes(w) // [out, in] bf16
	w = nil
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		if _, err := QuantizeRaw("up_proj", safetensors.BF16, raw, []int{out, in}); err != nil {
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
