package gpu

import "github.com/t2m/t2m/internal/bf16"

// BF16 rounds f to bfloat16 (round to nearest, ties to even, as the kernels' __float2bfloat16_rn), returned as
// its 16 bits; NaN stays NaN. gpu's short name for bf16.FromFloat32, the one copy of that rounding.
func BF16(f float32) uint16 { return bf16.FromFloat32(f) }

// F32 widens bfloat16 bits to float32 (exact). gpu's short name for bf16.ToFloat32.
func F32(b uint16) float32 { return bf16.ToFloat32(b) }

// splitmix64 is the hash behind the random fills of kernels/nf4.cu (the CPU twin of its splitmix64).
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// RandomU8CPU is the CPU twin of the kernel fill_random_u8: out[i] = low byte of splitmix64(seed ^ i).
func RandomU8CPU(n int, seed uint64) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(splitmix64(seed ^ uint64(i)))
	}
	return out
}

// RandomBF16CPU is the CPU twin of the kernel fill_random_bf16: uniform values in [-scale, scale).
func RandomBF16CPU(n int, seed uint64, scale float32) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		u := float32(splitmix64(seed^uint64(i))>>40) * (1.0 / 16777216.0)
		out[i] = BF16((2*u - 1) * scale)
	}
	return out
}
