package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/t2m/t2m/internal/bf16"
)

// F16ToFloat32 widens an IEEE half-precision bit pattern to float32 (exact,
// subnormals included).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = mant × 2^-24.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	default:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	}
}

// DecodeFloat32 converts little-endian raw bytes of dtype F32, BF16 or F16 into dst,
// which must hold exactly len(raw)/size elements. It lets callers convert a row range
// of a memory-mapped tensor without materialising the whole tensor.
func DecodeFloat32(dt DType, raw []byte, dst []float32) error {
	size, err := dt.Size()
	if err != nil {
		return err
	}
	if len(raw) != len(dst)*size {
		return fmt.Errorf("decode %s: %d bytes for %d elements", dt, len(raw), len(dst))
	}
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = bf16.ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	default:
		return fmt.Errorf("decode: dtype %s is not a float type (want F32, BF16 or F16)", dt)
	}
	return nil
}
