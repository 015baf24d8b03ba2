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
	if dims.B <= 0 || dims.Tp <= 0 || dims.Tl <= 0 || dims.Tl > dims.Tp || dims.C <= 0 || dims.C%8 != 0 {
		return fmt.Errorf("gpu: dropout: shape %+v: need positive sizes, Tl ≤ Tp and C a multiple of 8", dims)
	}
	const threads, gridYZ = 128, 65535
	c8 := dims.C / 8
	colBlocks := (c8 + threads - 1) / threads
	if dims.B > gridYZ || colBlocks > gridYZ || dims.Tp > math.MaxInt32 {
		return fmt.Errorf("gpu: dropout: shape %+v: B ≤ %d, C ≤ %d and Tp < 2³¹ (the grid's limits)", dims, gridYZ,
			8*threads*gridYZ)
	}
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("gpu: dropout: drop probability %g must be in [0, 1)", p)
	}
	rows := dims.B * dims.Tp
	s := int64(rows) * int64(dims.C) * 2
	if err := kernArgs("dropout", "y", y, s, "x", x, s); err != nil {
		return err
	}
	k, err := d.Kernel("dropout", "dropout_bf16")
	if err != nil {
		return err
	}
	scale := 1 / (1 - p) // as model.DropoutForward computes it, in float32
	grid := cuda.Dim3{X: dims.Tp, Y: colBlocks, Z: dims.B}
	return d.Launch(k, grid, D1(threads), 0, y, x, c8, dims.Tp, dims.Tl, seed, p, scale)
}
