//go:build t2mcuda

package ops

import (
	"fmt"
	"math"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// NF4QuantizeWorkBytes is the size of the work buffer QuantizeNF4 needs for a weight of n elements: the
// float32 absmax of its 64-blocks and 16 bytes of status (first non-finite element, offset).
func NF4QuantizeWorkBytes(n int64) int64 {
	nb := (n + quant.BlockSize - 1) / quant.BlockSize
	return nf4QuantStatusBytes + cuda.AlignUp(nb*4)
}

// nf4QuantStatusBytes is the status at the start of the work buffer: [0, 8) the smallest index of a NaN or
// ±Inf element (all ones: none), [8, 12) the offset float32.
const nf4QuantStatusBytes = 256

// QuantizeNF4 quantizes the weight x on the device ([w.Rows, w.Cols] of dtype dt: BF16, F16 or F32) into w
// (from AllocNF4 with block sizes quant.BlockSize and quant.NestedBlockSize) on d's stream, and waits for it:
// w's Codes, Absmax (8-bit codes), Code2 (quant.DynamicMap), Absmax2 and Offset then hold exactly the bytes
// quant.QuantizeRaw (or quant.Quantize) computes on the CPU from the same values. work (at least
// NF4QuantizeWorkBytes(w.Rows·w.Cols) bytes) holds the first-level absmax in between. A NaN or ±Inf element
// is an error naming the first one, as on the CPU. name appears in errors.
// Kernels: nf4_quantize_blocks_<dtype>, nf4_quantize_offset, nf4_quantize_nested (kernels/nf4_quantize.cu);
// CPU twin: quant.QuantizeRaw.
func QuantizeNF4(d *cuda.Device, x cuda.Buffer, dt safetensors.DType, w *NF4Weight, work cuda.Buffer,
	name string) error {
	if w.BlockSize != quant.BlockSize || w.BlockSize2 != quant.NestedBlockSize {
		return fmt.Errorf("gpu: NF4 quantize %s: block sizes %d/%d, the kernels have %d/%d only", name,
			w.BlockSize, w.BlockSize2, quant.BlockSize, quant.NestedBlockSize)
	}
	off, err := quantizeNF4(d, x, dt, int64(w.Rows)*int64(w.Cols),
		nf4QuantOut{Codes: w.Codes, Absmax: w.Absmax, Code2: w.Code2, Absmax2: w.Absmax2}, work)
	if err != nil {
		return fmt.Errorf("gpu: NF4 quantize %s [%d, %d]: %w", name, w.Rows, w.Cols, err)
	}
	w.Offset = off
	return nil
}

// nf4QuantOut are the device outputs of quantizeNF4 for n elements (quant.Weight's layout).
type nf4QuantOut struct {
	Codes   cuda.Buffer // [ceil(n/2)] uint8, element 2j in the high nibble
	Absmax  cuda.Buffer // [nb = ceil(n/64)] uint8 codes of Code2
	Code2   cuda.Buffer // [256] f32, filled with quant.DynamicMap
	Absmax2 cuda.Buffer // [ceil(nb/256)] f32
}

// quantizeNF4 is QuantizeNF4 on n elements of any count (odd too, as quant allows) and bare buffers; it
// returns the offset.
func quantizeNF4(d *cuda.Device, x cuda.Buffer, dt safetensors.DType, n int64, out nf4QuantOut,
	work cuda.Buffer) (float32, error) {
	var suffix string
	switch dt {
	case safetensors.BF16:
		suffix = "bf16"
	case safetensors.F16:
		suffix = "f16"
	case safetensors.F32:
		suffix = "f32"
	default:
		return 0, fmt.Errorf("dtype %s is not BF16, F16 or F32", dt)
	}
	size, err := dt.Size()
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%d elements", n)
	}
	nb := (n + quant.BlockSize - 1) / quant.BlockSize               // 64-blocks
	nb2 := (nb + quant.NestedBlockSize - 1) / quant.NestedBlockSize // nested blocks
	if err := kernArgs("nf4_quantize", "x", x, n*int64(size), "codes", out.Codes, (n+1)/2,
		"absmax", out.Absmax, nb, "code2", out.Code2, int64(256*4), "absmax2", out.Absmax2, nb2*4,
		"work", work, NF4QuantizeWorkBytes(n)); err != nil {
		return 0, err
	}
	if nb2 >= 1<<31 {
		return 0, fmt.Errorf("%d elements: more nested blocks than a grid holds", n)
	}
	status := work.Slice(0, nf4QuantStatusBytes)    // [first bad element u64, offset f32]
	absmax := work.Slice(nf4QuantStatusBytes, nb*4) // [nb] f32
	kBlocks, err := d.Kernel("nf4_quantize", "nf4_quantize_blocks_"+suffix)
	if err != nil {
		return 0, err
	}
	kOffset, err := d.Kernel("nf4_quantize", "nf4_quantize_offset")
	if err != nil {
		return 0, err
	}
	kNested, err := d.Kernel("nf4_quantize", "nf4_quantize_nested")
	if err != nil {
		return 0, err
	}
	dm := quant.DynamicMap // a copy: the one map of the CPU quantizer, as the kernels' code2
	if err := cuda.Upload(d, out.Code2, dm[:]); err != nil {
		return 0, err
	}
	if err := d.Memset(status, 0xFF); err != nil {
		return 0, err
	}
	const threads, blocksPerCTA = 256, 256 / 32 // one warp per 64-block
	if err := d.Launch(kBlocks, D1(int((nb+blocksPerCTA-1)/blocksPerCTA)), D1(threads), 0, x, out.Codes, absmax,
		status, n); err != nil {
		return 0, err
	}
	if err := d.Launch(kOffset, D1(1), D1(threads), 0, absmax, status.Slice(8, 4), nb); err != nil {
		return 0, err
	}
	if err := d.Launch(kNested, D1(int(nb2)), D1(threads), 0, absmax, status.Slice(8, 4), out.Code2, out.Absmax,
		out.Absmax2, nb); err != nil {
		return 0, err
	}
	var st [2]uint64 // [first non-finite element, offset bits in the low word]
	if err := cuda.Download(d, st[:], status); err != nil {
		return 0, err
	}
	if bad := st[0]; bad != math.MaxUint64 {
		if bad >= uint64(n) {
			return 0, fmt.Errorf("the kernel reports non-finite element %d of %d", bad, n)
		}
		raw := make([]byte, size)
		if err := cuda.Download(d, raw, x.Slice(int64(bad)*int64(size), int64(size))); err != nil {
			return 0, fmt.Errorf("element %d is not finite (reading it back: %w)", bad, err)
		}
		v := make([]float32, 1)
		if err := safetensors.DecodeFloat32(dt, raw, v); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("element %d is %v", bad, v[0])
	}
	return math.Float32frombits(uint32(st[1])), nil // bytes [8, 12) of the status, little-endian
}
