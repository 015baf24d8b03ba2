//go:build t2mcuda

package ops

import (
	"fmt"
	"math"

	"github.com/t2m/t2m/gpu/cuda"
)

// AdamWHyper are torch.optim.AdamW's hyperparameters (amsgrad off).
type AdamWHyper struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// AdamWStep launches adamw_f32 over one flat set of fp32 master parameters, for optimizer step t (1-based),
// exactly as torch.optim.AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
// p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps). The bias corrections are computed here in float64.
// p, m, v, g [n] fp32 (p, m, v updated in place); gscale [1] fp32 multiplies g first (the clip factor from
// GradNormClip), or a zero Buffer; pbf16 [n] bf16 receives the updated parameters rounded (the forward's
// copy), or a zero Buffer.
func AdamWStep(d *cuda.Device, p, m, v, g, pbf16, gscale cuda.Buffer, n, t int, h AdamWHyper) error {
	if n <= 0 || t < 1 {
		return fmt.Errorf("gpu: adamw: %d parameters at step %d: need n > 0 and t ≥ 1", n, t)
	}
	b := int64(n) * 4
	var pb, gb int64
	if pbf16.Ptr != 0 {
		pb = int64(n) * 2
	}
	if gscale.Ptr != 0 {
		gb = 4
	}
	if err := kernArgs("adamw", "p", p, b, "m", m, b, "v", v, b, "g", g, b, "pbf16", pbf16, pb, "gscale", gscale,
		gb); err != nil {
		return err
	}
	k, err := d.Kernel("adamw", "adamw_f32")
	if err != nil {
		return err
	}
	bc1 := 1 - math.Pow(h.Beta1, float64(t))
	bc2 := 1 - math.Pow(h.Beta2, float64(t))
	return d.Launch(k, D1((n+255)/256), D1(256), 0, p, m, v, g, pbf16, gscale, n, float32(h.LR),
		float32(h.Beta1), float32(h.Beta2), float32(h.Eps), float32(h.WeightDecay), float32(h.LR/bc1),
		float32(1/math.Sqrt(bc2)))
}
