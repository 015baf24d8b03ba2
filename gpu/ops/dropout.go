//go:build t2mcuda

package ops

import (
	"fmt"
	"math"

	"github.com/t2m/t2m/gpu/cuda"
)

// DropoutDims is a dropout launch's shape: the device buffer is [B·Tp, C] (the machine's padded shape),
// while the mask is drawn by the element's flat index in the logical [B·Tl, C] tensor the CPU sees, so a
// padded micro-batch gets the CPU's mask on its real rows. Tl == Tp when nothing is padded.
type DropoutDims struct {
	B, Tp, Tl, C int
}

// Dropout launches dropout_bf16 (CPU twin: model.DropoutForward; the mask is model.DropoutKeep's, bit for
// bit): y = x·keep/(1−p), keep_j = DropoutKeep(seed, j, p) with j = (b·Tl + t)·C + c for the element at
// row b·Tp + t, column c. p = 0 copies x (evaluation). The backward of dropout is the same call on dy.
// y, x [B·Tp, C] bf16, C % 8 == 0; y may be x. Grid (Tp, ⌈C/8/128⌉, B), block 128 (no index division in
// the kernel): ⌈C/8/128⌉ and B must fit the grid's y and z (65535), Tp its x.
func Dropout(d *cuda.Device, y, x cuda.Buffer, dims DropoutDims, p float32, seed uint64) error {
	grid, c8, scale, err := dropoutLaunch(dims, p, "y", y, "x", x)
	if err != nil {
		return err
	}
	k, err := d.Kernel("dropout", "dropout_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, grid, D1(dropoutThreads), 0, y, x, c8, dims.Tp, dims.Tl, seed, p, scale)
}

// DropoutAdd launches dropout_add_bf16: y = a + Dropout(x), each rounded to bf16 as Dropout and AddBF16
// write them, in one pass (the backward of LoRA dropout summed into its input's other gradient, without the
// dropped gradient's own buffer). y, a, x [B·Tp, C] bf16; y may be a or x.
func DropoutAdd(d *cuda.Device, y, a, x cuda.Buffer, dims DropoutDims, p float32, seed uint64) error {
	grid, c8, scale, err := dropoutLaunch(dims, p, "y", y, "x", x, "a", a)
	if err != nil {
		return err
	}
	k, err := d.Kernel("dropout", "dropout_add_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, grid, D1(dropoutThreads), 0, y, a, x, c8, dims.Tp, dims.Tl, seed, p, scale)
}

// LoRADropoutAdd launches lora_dropout_add_bf16: y = a + Dropout(dxl) with dxl = bf16(scaling·g·A), the
// LoRA branch's input gradient under LoRA dropout summed into its input's other gradient, without a buffer
// for dxl (CPU twins: model's LoRAGradOp 'X', DropoutOp's backward and the gradient sum). dxl is the sum over
// r = 0..R−1 in order, scaled once and rounded once, as a GEMM with alpha = scaling writes it; the dropout
// and the sum are rounded as DropoutAdd rounds them. y, a [B·Tp, C] bf16 (y may be a); g = dy·B [B·Tp, R]
// bf16; A [R, C] bf16 (lora_A). Ranks 8 and 16 have their own kernels (A's columns in registers); any
// other rank runs the generic one.
func LoRADropoutAdd(d *cuda.Device, y, a, g, A cuda.Buffer, R int, dims DropoutDims, p, scaling float32,
	seed uint64) error {
	grid, c8, scale, err := dropoutLaunch(dims, p, "y", y, "a", a)
	if err != nil {
		return err
	}
	if R <= 0 {
		return fmt.Errorf("gpu: LoRA dropout add: rank %d", R)
	}
	if err := kernArgs("LoRA dropout add", "g", g, int64(dims.B*dims.Tp)*int64(R)*2, "A", A,
		int64(R)*int64(dims.C)*2); err != nil {
		return err
	}
	grid.X = (dims.Tp + loraDropoutRows - 1) / loraDropoutRows
	if R == 8 || R == 16 { // A's columns held in registers, the rows' loads issued together
		k, err := d.Kernel("dropout", fmt.Sprintf("lora_dropout_add_bf16_r%d", R))
		if err != nil {
			return err
		}
		return d.Launch(k, grid, D1(dropoutThreads), 0, y, a, g, A, c8, dims.Tp, dims.Tl, seed, p, scale, scaling)
	}
	k, err := d.Kernel("dropout", "lora_dropout_add_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, grid, D1(dropoutThreads), 0, y, a, g, A, c8, dims.Tp, dims.Tl, seed, p, scale, scaling, R)
}

// loraDropoutRows is LDA_ROWS of kernels/dropout.cu: the rows one thread of lora_dropout_add_bf16 handles.
const loraDropoutRows = 8

const dropoutThreads = 128

// dropoutLaunch checks a dropout launch (dims, p, and each named buffer holding [B·Tp, C] bf16) and gives its
// grid, C/8 and the scale 1/(1−p).
func dropoutLaunch(dims DropoutDims, p float32, bufs ...any) (cuda.Dim3, int, float32, error) {
	const gridYZ = 65535
	if dims.B <= 0 || dims.Tp <= 0 || dims.Tl <= 0 || dims.Tl > dims.Tp || dims.C <= 0 || dims.C%8 != 0 {
		return cuda.Dim3{}, 0, 0, fmt.Errorf("gpu: dropout: shape %+v: need positive sizes, Tl ≤ Tp and C a multiple of 8", dims)
	}
	c8 := dims.C / 8
	colBlocks := (c8 + dropoutThreads - 1) / dropoutThreads
	if dims.B > gridYZ || colBlocks > gridYZ || dims.Tp > math.MaxInt32 {
		return cuda.Dim3{}, 0, 0, fmt.Errorf("gpu: dropout: shape %+v: B ≤ %d, C ≤ %d and Tp < 2³¹ (the grid's limits)", dims,
			gridYZ, 8*dropoutThreads*gridYZ)
	}
	if !(p >= 0 && p < 1) {
		return cuda.Dim3{}, 0, 0, fmt.Errorf("gpu: dropout: drop probability %g must be in [0, 1)", p)
	}
	s := int64(dims.B*dims.Tp) * int64(dims.C) * 2
	var args []any
	for k := 0; k < len(bufs); k += 2 {
		args = append(args, bufs[k], bufs[k+1], s)
	}
	if err := kernArgs("dropout", args...); err != nil {
		return cuda.Dim3{}, 0, 0, err
	}
	scale := 1 / (1 - p) // as model.DropoutForward computes it, in float32
	return cuda.Dim3{X: dims.Tp, Y: colBlocks, Z: dims.B}, c8, scale, nil
}
