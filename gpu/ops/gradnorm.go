//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// gradNormBlocks is the number of partial sums gradnorm_partial writes (a fixed grid keeps the sum's order,
// and so its rounding, the same from step to step).
const gradNormBlocks = 512

// GradNormScratchBytes is the scratch GradNormClip needs: the partial sums.
func GradNormScratchBytes() int64 { return gradNormBlocks * 4 }

// GradNormClip computes the global L2 norm of one flat fp32 gradient buffer and the clip factor of
// torch.nn.utils.clip_grad_norm_: out[0] = ‖g‖₂, out[1] = min(1, maxNorm/(‖g‖₂ + 1e-6)) (1 when maxNorm ≤ 0).
// The factor stays on the device: pass out.Slice(4, 4) as AdamWStep's gscale, or call GradScale.
// g [n] fp32; out [2] fp32; scratch of GradNormScratchBytes.
func GradNormClip(d *cuda.Device, out, g, scratch cuda.Buffer, n int, maxNorm float32) error {
	if n <= 0 {
		return fmt.Errorf("gpu: grad norm: %d elements", n)
	}
	if err := kernArgs("grad norm", "out", out, int64(8), "g", g, int64(n)*4, "scratch", scratch,
		GradNormScratchBytes()); err != nil {
		return err
	}
	part, err := d.Kernel("gradnorm", "gradnorm_partial")
	if err != nil {
		return err
	}
	fin, err := d.Kernel("gradnorm", "gradnorm_finish")
	if err != nil {
		return err
	}
	if err := d.Launch(part, D1(gradNormBlocks), D1(256), 0, scratch, g, n); err != nil {
		return err
	}
	return d.Launch(fin, D1(1), D1(256), 0, out, scratch, gradNormBlocks, maxNorm)
}

// GradScale launches grad_scale_f32: g[i] *= scale[0]. g [n] fp32, scale [1] fp32 (e.g. GradNormClip's out[1]).
func GradScale(d *cuda.Device, g, scale cuda.Buffer, n int) error {
	if n <= 0 {
		return fmt.Errorf("gpu: grad scale: %d elements", n)
	}
	if err := kernArgs("grad scale", "g", g, int64(n)*4, "scale", scale, int64(4)); err != nil {
		return err
	}
	k, err := d.Kernel("gradnorm", "grad_scale_f32")
	if err != nil {
		return err
	}
	return d.Launch(k, D1((n+255)/256), D1(256), 0, g, scale, n)
}
