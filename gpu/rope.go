//go:build t2mcuda

package gpu

import "fmt"

// RoPE launches rope_bf16: rotary embeddings in HF's rotate_half layout on every head of every row, fp32
// angles a = pos·θ^(−2i/D). backward=false is model.RoPEForward (y = RoPE_a(x)), backward=true is
// model.RoPEBackward (the rotation by −a, applied to dy). y, x [rows, heads·headDim] bf16 (y may be x, in
// place); positions [rows] int32.
func RoPE(d *Device, y, x, positions Buffer, rows, heads, headDim int, theta float32, backward bool) error {
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
