package cuda

import (
	"sync"

	"github.com/t2m/t2m/internal/bf16"
	"github.com/t2m/t2m/internal/rng"
)

// BF16 rounds f to bfloat16 (round to nearest, ties to even, as the kernels' __float2bfloat16_rn), returned as
// its 16 bits; NaN stays NaN. The short name for bf16.FromFloat32, the one copy of that rounding.
func BF16(f float32) uint16 { return bf16.FromFloat32(f) }

// F32 widens bfloat16 bits to float32 (exact). The short name for bf16.ToFloat32.
func F32(b uint16) float32 { return bf16.ToFloat32(b) }

// RandomU8CPU is the CPU twin of the kernel fill_random_u8: out[i] = low byte of rng.SplitMix64(seed ^ i).
func RandomU8CPU(n int, seed uint64) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(rng.SplitMix64(seed ^ uint64(i)))
	}
	return out
}

// RandomBF16CPU is the CPU twin of the kernel fill_random_bf16: uniform values in [-scale, scale), from the
// top 24 bits of rng.SplitMix64(seed ^ i).
func RandomBF16CPU(n int, seed uint64, scale float32) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		u := float32(rng.SplitMix64(seed^uint64(i))>>40) * (1.0 / 16777216.0)
		out[i] = BF16((2*u - 1) * scale)
	}
	return out
}

// RoundBF16 rounds src into dst (same length), in parallel chunks: 15M LoRA values of the 7B take a few
// milliseconds this way.
func RoundBF16(dst []uint16, src []float32) {
	const chunk = 1 << 18
	var wg sync.WaitGroup
	for lo := 0; lo < len(src); lo += chunk {
		hi := min(lo+chunk, len(src))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := lo; k < hi; k++ {
				dst[k] = BF16(src[k])
			}
		}()
	}
	wg.Wait()
}

// RoundedBF16 returns src rounded to bf16 (RoundBF16 into a new slice).
func RoundedBF16(src []float32) []uint16 {
	dst := make([]uint16, len(src))
	RoundBF16(dst, src)
	return dst
}
