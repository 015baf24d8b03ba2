//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// NF4GEMVMaxRows is the most rows NF4GEMV multiplies at once (decode steps of up to this many sequences).
const NF4GEMVMaxRows = 8

// NF4GEMV computes y = x·Wᵀ + beta·y straight from the NF4 weight w [out, in], without a bf16 copy of it in
// memory: x [rows, in] bf16, y [rows, out] bf16 or fp32, rows ≤ NF4GEMVMaxRows; in and the block size must be
// multiples of 8 and x's rows 16-byte aligned. The operands equal those of DequantNF4 then a GEMM (each weight
// rounded to bf16); only the order of the fp32 sums differs.
// Kernel: nf4_gemv (kernels/nf4_gemv.cu); CPU twin: quant's (*Weight).Dequantize rounded to bf16, then x·Wᵀ.
func NF4GEMV(d *cuda.Device, x, y cuda.Mat, w *NF4Weight, beta float32) error {
	switch {
	case x.Rows < 1 || x.Rows > NF4GEMVMaxRows || y.Rows != x.Rows:
		return fmt.Errorf("gpu: NF4 GEMV of %d rows into %d (1..%d)", x.Rows, y.Rows, NF4GEMVMaxRows)
	case x.Cols != w.Cols || y.Cols != w.Rows:
		return fmt.Errorf("gpu: NF4 GEMV: x [%d, %d], W [%d, %d], y [%d, %d]", x.Rows, x.Cols, w.Rows, w.Cols, y.Rows, y.Cols)
	case x.DType != cuda.BF16T || (y.DType != cuda.BF16T && y.DType != cuda.F32T):
		return fmt.Errorf("gpu: NF4 GEMV: x is %s (want bf16), y %s (bf16 or f32)", x.DType, y.DType)
	case w.Cols%8 != 0 || w.BlockSize%8 != 0 || x.Stride()%8 != 0:
		return fmt.Errorf("gpu: NF4 GEMV: in %d, block size %d and x's row stride %d must be multiples of 8", w.Cols, w.BlockSize, x.Stride())
	}
	if err := x.Check("NF4 GEMV x"); err != nil {
		return err
	}
	if err := y.Check("NF4 GEMV y"); err != nil {
		return err
	}
	k, err := d.Kernel("nf4_gemv", "nf4_gemv")
	if err != nil {
		return err
	}
	f32 := int64(0)
	if y.DType == cuda.F32T {
		f32 = 1
	}
	return d.Launch(k, D1((w.Rows+7)/8), D1(256), 0, y.Buf, x.Buf, w.Codes, w.Absmax, w.Code2, w.Absmax2, w.Offset, beta,
		int64(x.Rows), int64(w.Rows), int64(w.Cols), int64(x.Stride()), int64(y.Stride()), int64(w.BlockSize),
		int64(w.BlockSize2), f32)
}
