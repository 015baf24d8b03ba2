// Package bf16 converts between float32 and bfloat16, the 16-bit format (float32's sign, 8-bit exponent and
// top 7 mantissa bits) of the weights t2m reads from checkpoints and of the GPU's activations.
//
// FromFloat32 rounds to nearest, ties to even, as torch's .to(torch.bfloat16) and the CUDA kernels'
// __float2bfloat16_rn do, so host-side rounding (safetensors writing, uploads to the GPU, the CPU twins
// of GPU kernels) gives the same bits as the reference and the device. It is the one copy of that
// rounding in t2m: safetensors and gpu both call it.
//
// It depends only on the standard library, so that every t2m package may use it.
package bf16

import "math"

// FromFloat32 rounds f to the nearest bfloat16, ties to even, returned as its 16 bits. NaN stays NaN (sign
// kept, quiet mantissa bit set); ±Inf stay ±Inf and values beyond bfloat16's range round to ±Inf, as in
// IEEE rounding.
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep the sign, force a quiet mantissa bit
		return uint16(b>>16) | 0x0040
	}
	// Add 0x7fff plus the lowest kept bit, then truncate: round half to even.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// ToFloat32 widens bfloat16 bits to float32 (exact: bfloat16 is float32's top half).
func ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Widen writes each bfloat16 of src into dst as float32 (exact); dst is at least as long as src.
func Widen(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = ToFloat32(h)
	}
}
