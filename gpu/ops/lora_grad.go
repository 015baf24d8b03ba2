//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// The LoRA weight gradients of kernels/lora_grad.cu: a block covers 256 columns of X and a chunk of rows
// (walked 32 at a time); three blocks fit an SM.
const (
	loraGradCols     = 256
	loraGradTile     = 32
	loraGradWave     = 3 * decodeSMs // blocks resident at once on an H100/H200: a launch stays within one wave
	loraGradMinTiles = 4             // row tiles a block walks at least (where there are that many)
)

// LoRAGradRanks reports whether LoRAGrad has a kernel for rank r (others use cuBLAS's skinny GEMMs).
func LoRAGradRanks(r int) bool { return r == 8 || r == 16 }

// loraGradGrid splits X [N, C] into blocks: nx column blocks of 256 and ny row chunks of rb rows (a multiple
// of 32), at most one wave of blocks (a second, nearly empty wave would double the time), each block walking
// as few rows as that allows but at least loraGradMinTiles tiles (its pipeline fills, and the reduction adds
// fewer partial sums per output).
func loraGradGrid(N, C int) (nx, ny, rb int) {
	nx = (C + loraGradCols - 1) / loraGradCols
	tiles := (N + loraGradTile - 1) / loraGradTile
	ny = min(max(loraGradWave/nx, 1), max(tiles/loraGradMinTiles, 1))
	rb = (tiles + ny - 1) / ny * loraGradTile
	return nx, (N + rb - 1) / rb, rb
}

// LoRAGradScratchBytes is the scratch LoRAGrad needs for X [N, C] at rank R: the fp32 partial sums P1
// [ny, C, R] and, for g, P2 [nx, N, R], each 256-byte aligned.
func LoRAGradScratchBytes(N, C, R int) int64 {
	nx, ny, _ := loraGradGrid(N, C)
	return cuda.AlignUp(int64(ny)*int64(C)*int64(R)*4) + cuda.AlignUp(int64(nx)*int64(N)*int64(R)*4)
}

// LoRAGradArgs are one LoRAGrad call: X [N, C] bf16 (C % 8 == 0), Y [N, R] bf16, and optionally Bm [C, R] bf16.
type LoRAGradArgs struct {
	X, Y, Bm cuda.Buffer
	N, C, R  int
	// DW receives Alpha·Xᵀ·Y in fp32: [C, R], or [R, C] with Transpose; zero: not computed (Y unused).
	DW        cuda.Buffer
	Alpha     float32
	Transpose bool
	// G receives X·Bm [N, R] in bf16 (one rounding of the fp32 sum); both zero: not computed. With BmT, Bm is
	// given transposed, [R, C] (lora_A, for the forward's h = xl·Aᵀ).
	G   cuda.Buffer
	BmT bool
	// Drop > 0 reads X through LoRA dropout with that probability and mask seed (bit for bit the values
	// Dropout writes for [N, C], element j = n·C + c): xl is never written.
	Drop float32
	Seed uint64
}

// LoRAGrad computes a LoRA linear's rank-r products by tensor cores from one walk over X (CPU twins: model's
// LoRAGradOp 'A' and 'B', and the LoRA branch of LinearOp):
//   - with X = dy [N, out], Y = h [N, r], Bm = lora_B [out, r]: dW = s·dyᵀ·h (dB, [out, r]) and G = dy·B;
//   - with X = xl [N, in], Y = g [N, r], Transpose: dW = s·gᵀ·xl (dA, [r, in]);
//   - with X = xl, Bm = lora_A [r, in], BmT and no DW: G = xl·Aᵀ (the forward's h).
//
// Where xl is LoRA dropout's output, X can be its input with Drop and Seed set instead.
//
// lora_grad_partial_r<R>[_g|_h][_d] writes fp32 partial sums per block into scratch (LoRAGradScratchBytes),
// and lora_grad_reduce adds them in a fixed order: the result does not depend on timing.
func LoRAGrad(d *cuda.Device, a LoRAGradArgs, scratch cuda.Buffer) error {
	if !LoRAGradRanks(a.R) || a.N <= 0 || a.C <= 0 || a.C%8 != 0 {
		return fmt.Errorf("gpu: LoRA gradients of X [%d, %d] at rank %d: need N, C > 0, C %% 8 == 0, rank 8 or 16",
			a.N, a.C, a.R)
	}
	withG, withDW := a.Bm.Ptr != 0, a.DW.Ptr != 0
	if withG != (a.G.Ptr != 0) || (!withG && !withDW) || (a.BmT && withDW) {
		return fmt.Errorf("gpu: LoRA gradients: Bm and G come together, with DW or alone (BmT only alone)")
	}
	if !(a.Drop >= 0 && a.Drop < 1) {
		return fmt.Errorf("gpu: LoRA gradients: drop probability %g must be in [0, 1)", a.Drop)
	}
	nx, ny, rb := loraGradGrid(a.N, a.C)
	nr, cr := int64(a.N)*int64(a.R), int64(a.C)*int64(a.R)
	checks := []any{"X", a.X, int64(a.N) * int64(a.C) * 2, "scratch", scratch, LoRAGradScratchBytes(a.N, a.C, a.R)}
	if withDW {
		checks = append(checks, "Y", a.Y, nr*2, "DW", a.DW, cr*4)
	}
	if withG {
		checks = append(checks, "Bm", a.Bm, cr*2, "G", a.G, nr*2)
	}
	if err := kernArgs("LoRA gradients", checks...); err != nil {
		return err
	}
	p1 := scratch.Slice(0, int64(ny)*cr*4)
	p2 := scratch.Slice(cuda.AlignUp(p1.Bytes), int64(nx)*nr*4)
	smem := loraGradSmem(a.R, withG)
	name := fmt.Sprintf("lora_grad_partial_r%d", a.R)
	switch {
	case withG && withDW:
		if a.Drop > 0 {
			return fmt.Errorf("gpu: LoRA gradients: dB and g from dy do not drop their input")
		}
		name += "_g"
	case withG:
		name += "_h"
	}
	if a.Drop > 0 {
		if int64(a.N)*int64(a.C) > 1<<32 {
			return fmt.Errorf("gpu: LoRA gradients: dropping X [%d, %d] as read needs fewer than 2³² elements", a.N, a.C)
		}
		name += "_d"
	}
	k, err := smemKernel(d, "lora_grad", name, smem)
	if err != nil {
		return err
	}
	bmT := 0
	if a.BmT {
		bmT = 1
	}
	if err := d.Launch(k, cuda.Dim3{X: nx, Y: ny, Z: 1}, D1(256), smem, p1, p2, a.X, a.Y, a.Bm, a.N, a.C, rb, bmT,
		a.Seed, a.Drop, 1/(1-a.Drop)); err != nil {
		return err
	}
	red, err := d.Kernel("lora_grad", "lora_grad_reduce")
	if err != nil {
		return err
	}
	total := int64(0)
	if withDW {
		total += cr
	}
	if withG {
		total += nr
	}
	tr := 0
	if a.Transpose {
		tr = 1
	}
	return d.Launch(red, D1(int((total+255)/256)), D1(256), 0, a.G, p2, nx, a.N, a.DW, p1, ny, a.C, a.R, tr, a.Alpha)
}

// loraGradSmem is LG_SMEM(R, G) of kernels/lora_grad.cu: 3 stages of an X tile [32][264] and a Y tile
// [32][8 or 24] bf16, and with G two buffers of the 8 warps' [32][R] fp32 sums.
func loraGradSmem(R int, withG bool) int {
	ys := 8
	if R == 16 {
		ys = 24
	}
	n := 3 * loraGradTile * (loraGradCols + 8 + ys) * 2
	if withG {
		n += 2 * 8 * loraGradTile * R * 4
	}
	return n
}
