package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/t2m/t2m/internal/bf16"
	"github.com/t2m/t2m/safetensors"
)

// QK8_0 is the number of values in a Q8_0 block; Q8_0BlockBytes its size (fp16 scale + 32 int8).
const (
	QK8_0          = 32
	Q8_0BlockBytes = 2 + QK8_0
)

// AppendQ8_0 appends x quantized to Q8_0 to dst, block by block as ggml's quantize_row_q8_0_ref: per
// block d = max|x|/127 (stored as fp16), q = round(x/d) half away from zero (0 when d is 0). len(x) must
// be a multiple of QK8_0.
func AppendQ8_0(dst []byte, x []float32) ([]byte, error) {
	if len(x)%QK8_0 != 0 {
		return dst, fmt.Errorf("gguf: Q8_0 of %d values, not a multiple of %d", len(x), QK8_0)
	}
	for b := 0; b < len(x); b += QK8_0 {
		blk := x[b : b+QK8_0]
		amax := float32(0)
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F16FromFloat32(d))
		for _, v := range blk {
			dst = append(dst, byte(int8(math.Round(float64(v*id)))))
		}
	}
	return dst, nil
}

// DequantizeQ8_0 is AppendQ8_0's inverse up to rounding: q·d per value. data holds whole blocks.
func DequantizeQ8_0(data []byte) ([]float32, error) {
	if len(data)%Q8_0BlockBytes != 0 {
		return nil, fmt.Errorf("gguf: %d bytes of Q8_0 are not whole blocks of %d", len(data), Q8_0BlockBytes)
	}
	out := make([]float32, 0, len(data)/Q8_0BlockBytes*QK8_0)
	for b := 0; b < len(data); b += Q8_0BlockBytes {
		d := safetensors.F16ToFloat32(binary.LittleEndian.Uint16(data[b:]))
		for _, q := range data[b+2 : b+Q8_0BlockBytes] {
			out = append(out, float32(int8(q))*d)
		}
	}
	return out, nil
}

// AppendBF16 appends x as bfloat16 (round to nearest even, bf16.FromFloat32).
func AppendBF16(dst []byte, x []float32) []byte {
	for _, v := range x {
		dst = binary.LittleEndian.AppendUint16(dst, bf16.FromFloat32(v))
	}
	return dst
}

// AppendF32 appends x as little-endian float32.
func AppendF32(dst []byte, x []float32) []byte {
	for _, v := range x {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}

// F16FromFloat32 rounds f to IEEE half precision, to nearest even (as ggml's GGML_FP32_TO_FP16 on CPUs
// with F16C): overflow gives ±inf, tiny values subnormals or ±0, NaN stays NaN.
func F16FromFloat32(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff
	switch {
	case exp == 0xff: // inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // overflow
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e <= 0 { // subnormal half (or zero)
		if e < -10 {
			return sign
		}
		m := mant | 0x800000 // implicit bit
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || rem == mid && half&1 == 1 {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && half&1 == 1 {
		half++ // may carry into the exponent, up to inf: still correct
	}
	return sign | uint16(half)
}
