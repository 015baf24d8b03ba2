//go:build t2mcuda

package ops

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"

	"gorgonia.org/cu"

	"github.com/t2m/t2m/gpu/cuda"
)

// NF4GEMVMaxRows is the most rows NF4GEMV multiplies at once (decode steps of up to this many sequences), on
// weights the tensor-core kernels take (NF4GEMVRows); others take up to nf4GEMVWarpRows.
const NF4GEMVMaxRows = 32

// nf4GEMVWarpRows is the most rows of nf4_gemv, the kernel for the weights the tensor-core ones cannot read.
const nf4GEMVWarpRows = 8

// nf4GEMVMMA reports whether the tensor-core kernels (nf4_gemv_mma_*) read w: in a multiple of 32 (16-byte
// code loads of 32 inputs sharing one absmax), power-of-two block sizes with 32 | BlockSize, and element
// indices in 32 bits.
func nf4GEMVMMA(w *NF4Weight) bool {
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	return w.Cols%32 == 0 && w.BlockSize%32 == 0 && pow2(w.BlockSize) && pow2(w.BlockSize2) &&
		int64(w.Rows)*int64(w.Cols) < 1<<32
}

// nf4GEMVLevels reports whether the factored tensor-core kernels (nf4_gemv_lv_*) read w: in and the block
// size multiples of 64 (each mma's 16 inputs share one absmax), power-of-two block sizes, element indices in
// 32 bits. They are faster than the exact nf4_gemv_mma_* at every row count since their level table has a
// copy per lane (H200, 7B shape: 267 against 252 new tok/s at batch 1, 1,582 against 1,472 at 8).
func nf4GEMVLevels(w *NF4Weight) bool {
	return nf4GEMVFactored && nf4GEMVMMA(w) && w.Cols%64 == 0 && w.BlockSize%64 == 0
}

// nf4U8Tiles is the most output tiles of a weight the factored kernels read with 8 groups in flight per warp
// (nf4_gemv_lv_n8u8, _n16u8: 2 blocks per SM, so every tile fits in one wave) instead of 4 (3-4 blocks per
// SM). Experiment: T2M_NF4_U8_TILES overrides it.
var nf4U8Tiles = func() int {
	if n, err := strconv.Atoi(os.Getenv("T2M_NF4_U8_TILES")); err == nil {
		return n
	}
	return 2 * decodeSMs
}()

// nf4GEMVVec selects the factored kernels' _v builds where the weight allows them: a round of a warp's groups
// is whole absmax bytes of one second-level block, so their codes come in 4-byte loads and one scale (fewer
// registers, one more block per SM at up to 8 rows): 305 new tok/s at batch 1 against 284 without (H200,
// 7B shape), +3% at 16, +1% at 32. T2M_NF4_VEC=0 turns them off (experiment).
var nf4GEMVVec = os.Getenv("T2M_NF4_VEC") != "0"

// nf4GEMVFactored selects the factored kernels where they apply; tests turn it off to check the exact ones.
var nf4GEMVFactored = true

// NF4GEMVRows is the most rows NF4GEMV takes for w: NF4GEMMMaxRows where nf4_gemm_* read it, NF4GEMVMaxRows
// where the other tensor-core kernels do, 8 where only nf4_gemv does (in and the block size multiples of 8), 0
// where none does.
func NF4GEMVRows(w *NF4Weight) int {
	switch {
	case nf4GEMM(w):
		return NF4GEMMMaxRows
	case nf4GEMVMMA(w):
		return NF4GEMVMaxRows
	case w.Cols%8 == 0 && w.BlockSize%8 == 0:
		return nf4GEMVWarpRows
	}
	return 0
}

// NF4GEMVArgs are the operands of NF4GEMVFused: y = x·Wᵀ + bias + Scale·h·Bᵀ + Beta·y, the decoder's
// projection with its bias and a LoRA adapter applied unmerged (h = x·Aᵀ computed before).
type NF4GEMVArgs struct {
	X    cuda.Mat   // [rows, in] bf16, rows 16-byte aligned
	W    *NF4Weight // [out, in]
	Y    cuda.Mat   // [rows, out] bf16 or fp32
	Bias cuda.Buffer
	// H and B are the LoRA branch: H = x·Aᵀ [rows, rank] bf16, B [out, rank] bf16; zero Bufs leave it out.
	H, B  cuda.Mat
	Scale float32 // the LoRA scaling s
	Beta  float32
	// Work is fp32 room for nf4_gemm's partial sums above NF4GEMVMaxRows rows (splits × rows × out); with less,
	// fewer blocks split the inputs (none without it).
	Work cuda.Buffer
}

// NF4GEMV computes y = x·Wᵀ + beta·y straight from the NF4 weight w [out, in], without a bf16 copy of it in
// memory (NF4GEMVFused without bias or adapter).
func NF4GEMV(d *cuda.Device, x, y cuda.Mat, w *NF4Weight, beta float32) error {
	return NF4GEMVFused(d, NF4GEMVArgs{X: x, W: w, Y: y, Beta: beta})
}

// NF4GEMVFused computes a.Y = x·Wᵀ + bias + s·h·Bᵀ + beta·y straight from the NF4 weight W [out, in], without
// a bf16 copy of it in memory: x [rows, in] bf16, y [rows, out] bf16 or fp32, rows ≤ NF4GEMVRows(W); bias
// [out] bf16 when given. Where in and the block size are multiples of 64 each weight is bf16(level) · absmax,
// the absmax applied to the tensor cores' fp32 sums of 16 products (as close to the NF4 value as
// bf16(level · absmax), rounded at another point, and faster); elsewhere the operands of x·Wᵀ equal those of
// DequantNF4 then a GEMM (each weight rounded to bf16: bf16(level · absmax)). Products and sums are fp32, the
// bias and the LoRA term are added in fp32, and y is rounded once when it is bf16.
// Kernels: nf4_gemv_lv_n8/n16/n32 or nf4_gemv_mma_n8/n16/n32 (tensor cores, in a multiple of 64 or 32), else
// nf4_gemv (kernels/nf4_gemv.cu). CPU twins: quant's (*Weight).Dequantize rounded to bf16, then x·Wᵀ
// (+ bias + s·h·Bᵀ); for the lv kernels, bf16(level) · BlockAbsmax in place of the dequantized weight.
func NF4GEMVFused(d *cuda.Device, a NF4GEMVArgs) error {
	return NF4GEMVFusedOn(d, d.Stream, a)
}

// NF4GEMVFusedOn is NF4GEMVFused on stream s.
func NF4GEMVFusedOn(d *cuda.Device, s cu.Stream, a NF4GEMVArgs) error {
	x, y, w := a.X, a.Y, a.W
	maxRows := NF4GEMVRows(w)
	switch {
	case maxRows == 0:
		return fmt.Errorf("gpu: NF4 GEMV: in %d and block size %d must be multiples of 8", w.Cols, w.BlockSize)
	case x.Rows < 1 || x.Rows > maxRows || y.Rows != x.Rows:
		return fmt.Errorf("gpu: NF4 GEMV of %d rows into %d (1..%d for [%d, %d])", x.Rows, y.Rows, maxRows, w.Rows, w.Cols)
	case x.Cols != w.Cols || y.Cols != w.Rows:
		return fmt.Errorf("gpu: NF4 GEMV: x [%d, %d], W [%d, %d], y [%d, %d]", x.Rows, x.Cols, w.Rows, w.Cols, y.Rows, y.Cols)
	case x.DType != cuda.BF16T || (y.DType != cuda.BF16T && y.DType != cuda.F32T):
		return fmt.Errorf("gpu: NF4 GEMV: x is %s (want bf16), y %s (bf16 or f32)", x.DType, y.DType)
	case x.Stride()%8 != 0:
		return fmt.Errorf("gpu: NF4 GEMV: x's row stride %d must be a multiple of 8", x.Stride())
	case a.Bias.Bytes != 0 && a.Bias.Bytes < int64(w.Rows)*2:
		return fmt.Errorf("gpu: NF4 GEMV: bias of %d bytes for %d outputs", a.Bias.Bytes, w.Rows)
	}
	if err := x.Check("NF4 GEMV x"); err != nil {
		return err
	}
	if err := y.Check("NF4 GEMV y"); err != nil {
		return err
	}
	rank, ldh := 0, 0
	if a.H.Buf.Bytes != 0 || a.B.Buf.Bytes != 0 {
		rank, ldh = a.H.Cols, a.H.Stride()
		switch {
		case a.H.Rows != x.Rows || a.B.Rows != w.Rows || a.B.Cols != rank || a.B.Stride() != rank || rank < 1:
			return fmt.Errorf("gpu: NF4 GEMV: LoRA h [%d, %d], B [%d, %d] for %d rows, %d outputs", a.H.Rows, a.H.Cols,
				a.B.Rows, a.B.Cols, x.Rows, w.Rows)
		case a.H.DType != cuda.BF16T || a.B.DType != cuda.BF16T:
			return fmt.Errorf("gpu: NF4 GEMV: LoRA h is %s, B %s (want bf16)", a.H.DType, a.B.DType)
		}
		if err := a.H.Check("NF4 GEMV LoRA h"); err != nil {
			return err
		}
		if err := a.B.Check("NF4 GEMV LoRA B"); err != nil {
			return err
		}
	}
	f32 := int64(0)
	if y.DType == cuda.F32T {
		f32 = 1
	}
	if maxRows < NF4GEMVMaxRows {
		k, err := d.Kernel("nf4_gemv", "nf4_gemv")
		if err != nil {
			return err
		}
		return d.LaunchOn(s, k, D1((w.Rows+7)/8), D1(256), 0, y.Buf, x.Buf, w.Codes, w.Absmax, w.Code2, w.Absmax2, w.Offset,
			a.Beta, int64(x.Rows), int64(w.Rows), int64(w.Cols), int64(x.Stride()), int64(y.Stride()),
			int64(w.BlockSize), int64(w.BlockSize2), f32, a.Bias, a.H.Buf, a.B.Buf, a.Scale, int64(ldh), int64(rank))
	}
	if x.Rows > NF4GEMVMaxRows {
		return nf4GEMMLaunch(d, s, a, f32, rank, ldh)
	}
	name := nf4GEMVTileKernel(w, x.Rows)
	k, err := d.Kernel("nf4_gemv", name)
	if err != nil {
		return err
	}
	return d.LaunchOn(s, k, D1((w.Rows+15)/16), D1(256), 0, y.Buf, x.Buf, w.Codes, w.Absmax, w.Code2, w.Absmax2, w.Offset,
		a.Beta, int64(x.Rows), int64(w.Rows), int64(w.Cols), int64(x.Stride()), int64(y.Stride()),
		int64(bits.TrailingZeros(uint(w.BlockSize))), int64(bits.TrailingZeros(uint(w.BlockSize2))), f32, a.Bias,
		a.H.Buf, a.B.Buf, a.Scale, int64(ldh), int64(rank))
}

// nf4GEMVTileKernel names the tensor-core kernel of nf4_gemv.cu that multiplies rows ≤ NF4GEMVMaxRows rows by
// w: the factored nf4_gemv_lv_* where nf4GEMVLevels(w), else the exact nf4_gemv_mma_*; n8, n16 or n32 by rows;
// u8 for weights of at most nf4U8Tiles output tiles (up to 16 rows); _v where a round's absmax codes are one
// aligned 4-byte word under one second-level scale.
func nf4GEMVTileKernel(w *NF4Weight, rows int) string {
	tile := "n8"
	switch {
	case rows > 16:
		tile = "n32"
	case rows > 8:
		tile = "n16"
	}
	if !nf4GEMVLevels(w) {
		return "nf4_gemv_mma_" + tile
	}
	name, groups := "nf4_gemv_lv_"+tile, 4 // groups: 64-input groups a warp loads at once
	if tile != "n32" && (w.Rows+15)/16 <= nf4U8Tiles {
		name, groups = name+"u8", 8
	}
	vec := w.BlockSize == 64 && w.Cols%(64*groups) == 0 && w.BlockSize2%groups == 0 && w.Absmax.Ptr%4 == 0
	if nf4GEMVVec && vec {
		name += "_v"
	}
	return name
}
