//go:build t2mcuda

package ops

import (
	"github.com/t2m/t2m/gpu/cuda"
)

// F32ToBF16 rounds n fp32 values of x into y [n] bf16 (kernel attention_f32_to_bf16 of attention_bwd.cu,
// which the attention backward's parity test covers).
func F32ToBF16(d *cuda.Device, y, x cuda.Buffer, n int) error {
	if err := kernArgs("f32 to bf16", "y", y, int64(n)*2, "x", x, int64(n)*4); err != nil {
		return err
	}
	k, err := d.Kernel("attention_bwd", "attention_f32_to_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1((n+255)/256), D1(256), 0, y, x, n)
}
