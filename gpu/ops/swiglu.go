//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// SwiGLUForward launches swiglu_fwd_bf16 (CPU twin: model.SwiGLUForward): h = silu(gate)·up, fp32 math.
// h, gate, up [n] bf16, n % 8 == 0.
func SwiGLUForward(d *cuda.Device, h, gate, up cuda.Buffer, n int) error {
	if n <= 0 || n%8 != 0 {
		return fmt.Errorf("gpu: swiglu: %d elements, need a positive multiple of 8", n)
	}
	b := int64(n) * 2
	if err := kernArgs("swiglu", "h", h, b, "gate", gate, b, "up", up, b); err != nil {
		return err
	}
	k, err := d.Kernel("swiglu", "swiglu_fwd_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1((n/8+255)/256), D1(256), 0, h, gate, up, n/8)
}

// SwiGLUBackward launches swiglu_bwd_bf16 (CPU twin: model.SwiGLUBackward):
// dgate = dh·up·σ(g)·(1 + g·(1−σ(g))), dup = dh·silu(g). All [n] bf16, n % 8 == 0.
func SwiGLUBackward(d *cuda.Device, dgate, dup, dh, gate, up cuda.Buffer, n int) error {
	if n <= 0 || n%8 != 0 {
		return fmt.Errorf("gpu: swiglu backward: %d elements, need a positive multiple of 8", n)
	}
	b := int64(n) * 2
	if err := kernArgs("swiglu backward", "dgate", dgate, b, "dup", dup, b, "dh", dh, b, "gate", gate, b,
		"up", up, b); err != nil {
		return err
	}
	k, err := d.Kernel("swiglu", "swiglu_bwd_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1((n/8+255)/256), D1(256), 0, dgate, dup, dh, gate, up, n/8)
}
