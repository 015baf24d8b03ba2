//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// ArgmaxF32 launches argmax_f32 (CPU twin: model.Argmax): ids[r] = the first index of the largest value of
// row r of x. x [rows, V] fp32; ids [rows] int32. NaN logits never win (undefined if a row is all NaN).
func ArgmaxF32(d *cuda.Device, ids, x cuda.Buffer, rows, V int) error {
	if rows <= 0 || V <= 0 {
		return fmt.Errorf("gpu: argmax of [%d, %d]", rows, V)
	}
	if err := kernArgs("argmax", "ids", ids, int64(rows)*4, "x", x, int64(rows)*int64(V)*4); err != nil {
		return err
	}
	kern, err := d.Kernel("argmax", "argmax_f32")
	if err != nil {
		return err
	}
	return d.Launch(kern, D1(rows), D1(1024), 0, ids, x, V)
}
