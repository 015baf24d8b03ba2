//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// RoPE launches rope_bf16: rotary embeddings in HF's rotate_half layout on every head of every row, fp32
// angles a = pos·θ^(−2i/D). backward=false is model.RoPEForward (y = RoPE_a(x)), backward=true is
// model.RoPEBackward (the rotation by −a, applied to dy). y, x [rows, heads·headDim] bf16 (y may be x, in
// place); positions [rows] int32. The training machine and the decoder use the table path (RoPETable,
// RoPEApply) when headDim % 16 == 0; this kernel is their fallback for other head sizes.
func RoPE(d *cuda.Device, y, x, positions cuda.Buffer, rows, heads, headDim int, theta float32, backward bool) error {
	if headDim%2 != 0 || rows <= 0 || heads <= 0 {
		return fmt.Errorf("gpu: rope: rows %d, heads %d, headDim %d: need positive sizes and an even headDim",
			rows, heads, headDim)
	}
	n := int64(rows) * int64(heads) * int64(headDim) * 2
	if err := kernArgs("rope", "y", y, n, "x", x, n, "positions", positions, int64(rows)*4); err != nil {
		return err
	}
	k, err := d.Kernel("rope", "rope_bf16")
	if err != nil {
		return err
	}
	dir := float32(1)
	if backward {
		dir = -1
	}
	pairs := rows * heads * headDim / 2
	return d.Launch(k, D1((pairs+255)/256), D1(256), 0, y, x, positions, rows, heads, headDim, theta, dir)
}

// RoPETableBytes is the size of the table RoPETable writes: [rows, headDim/2] (cos, sin) fp32 pairs.
func RoPETableBytes(rows, headDim int) int64 { return int64(rows) * int64(headDim/2) * 8 }

// RoPETable launches rope_table_f32: cs[n, i] = (cos a, sin a), a = pos[n]·inv_freq[i] computed exactly as
// model.RoPEForward does. Compute it once per step (positions are the same in every layer) and rotate every
// layer's q and k with RoPEApply. cs [rows, headDim/2] float2 (RoPETableBytes); positions [rows] int32.
func RoPETable(d *cuda.Device, cs, positions cuda.Buffer, rows, headDim int, theta float32) error {
	if headDim%16 != 0 || rows <= 0 {
		return fmt.Errorf("gpu: rope table: rows %d, headDim %d: need rows > 0 and headDim a multiple of 16",
			rows, headDim)
	}
	if err := kernArgs("rope table", "cs", cs, RoPETableBytes(rows, headDim), "positions", positions,
		int64(rows)*4); err != nil {
		return err
	}
	k, err := d.Kernel("rope", "rope_table_f32")
	if err != nil {
		return err
	}
	n := rows * headDim / 2
	return d.Launch(k, D1((n+255)/256), D1(256), 0, cs, positions, rows, headDim, theta)
}

// RoPEApply launches rope_apply_bf16 with a table from RoPETable: backward=false is model.RoPEForward,
// backward=true is model.RoPEBackward. y, x [rows, heads·headDim] bf16 (y may be x); cs from RoPETable.
func RoPEApply(d *cuda.Device, y, x, cs cuda.Buffer, rows, heads, headDim int, backward bool) error {
	if headDim%16 != 0 || rows <= 0 || heads <= 0 {
		return fmt.Errorf("gpu: rope apply: rows %d, heads %d, headDim %d: need positive sizes and headDim a "+
			"multiple of 16", rows, heads, headDim)
	}
	n := int64(rows) * int64(heads) * int64(headDim) * 2
	if err := kernArgs("rope apply", "y", y, n, "x", x, n, "cs", cs, RoPETableBytes(rows, headDim)); err != nil {
		return err
	}
	k, err := d.Kernel("rope", "rope_apply_bf16")
	if err != nil {
		return err
	}
	dir := float32(1)
	if backward {
		dir = -1
	}
	threads := rows * heads * headDim / 16
	return d.Launch(k, D1((threads+255)/256), D1(256), 0, y, x, cs, rows, heads, headDim, dir)
}
