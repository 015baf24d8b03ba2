//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// RMSNormForward launches rmsnorm_fwd_bf16 (CPU twin: model.RMSNormForward): per row,
// y = x · rsqrt(mean(x²) + eps) · w, fp32 math.
// y, x [rows, cols] bf16; w [cols] bf16; cols % 8 == 0. (The kernel can also store each row's rsqrt, but
// the backward recomputes it, so the launcher passes null.)
func RMSNormForward(d *cuda.Device, y, x, w cuda.Buffer, rows, cols int, eps float32) error {
	if cols%8 != 0 || rows <= 0 {
		return fmt.Errorf("gpu: rmsnorm: rows %d, cols %d: need rows > 0 and cols a multiple of 8", rows, cols)
	}
	n := int64(rows) * int64(cols) * 2
	if err := kernArgs("rmsnorm forward", "y", y, n, "x", x, n, "w", w, int64(cols)*2); err != nil {
		return err
	}
	k, err := d.Kernel("rmsnorm", "rmsnorm_fwd_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1(rows), D1(256), 0, y, cuda.Buffer{}, x, w, cols, eps)
}

// RMSNormBackward launches rmsnorm_bwd_bf16 (CPU twin: model.RMSNormBackward): the gradient of x only,
// dx = r·(dy·w − x̂·mean(dy·w·x̂)) with r = rsqrt(mean(x²)+eps), x̂ = x·r (the norm weight is frozen).
// dx, dy, x [rows, cols] bf16; w [cols] bf16. cols % 8 == 0. dx may not alias dy or x.
func RMSNormBackward(d *cuda.Device, dx, dy, x, w cuda.Buffer, rows, cols int, eps float32) error {
	return RMSNormBackwardAdd(d, dx, dy, x, w, cuda.Buffer{}, rows, cols, eps)
}

// RMSNormBackwardAdd is RMSNormBackward with the gradient sum of the residual branch: dx = bf16(dx' + res),
// dx' rounded to bf16 first (as RMSNormBackward then AddBF16 give it), without dx' in memory. res [rows, cols]
// bf16, or a zero Buffer for none; dx may alias res.
func RMSNormBackwardAdd(d *cuda.Device, dx, dy, x, w, res cuda.Buffer, rows, cols int, eps float32) error {
	if cols%8 != 0 || rows <= 0 {
		return fmt.Errorf("gpu: rmsnorm backward: rows %d, cols %d: need rows > 0 and cols a multiple of 8", rows, cols)
	}
	n := int64(rows) * int64(cols) * 2
	rn := int64(0)
	if res.Ptr != 0 {
		rn = n
	}
	if err := kernArgs("rmsnorm backward", "dx", dx, n, "dy", dy, n, "x", x, n, "w", w, int64(cols)*2, "res", res,
		rn); err != nil {
		return err
	}
	k, err := d.Kernel("rmsnorm", "rmsnorm_bwd_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1(rows), D1(256), 0, dx, dy, x, w, res, cols, eps)
}
