//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// AddBF16 launches residual_add_bf16 (CPU twin: model.AddForward): y = a + b with one rounding.
// y, a, b [n] bf16, n % 8 == 0; y may be a or b.
func AddBF16(d *cuda.Device, y, a, b cuda.Buffer, n int) error {
	if n <= 0 || n%8 != 0 {
		return fmt.Errorf("gpu: add bf16: %d elements, need a positive multiple of 8", n)
	}
	s := int64(n) * 2
	if err := kernArgs("add bf16", "y", y, s, "a", a, s, "b", b, s); err != nil {
		return err
	}
	k, err := d.Kernel("residual", "residual_add_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1((n/8+255)/256), D1(256), 0, y, a, b, n/8)
}

// AddF32 launches residual_add_f32 (CPU twin: model.AddForward): y = a + b.
// y, a, b [n] fp32, n % 4 == 0; y may be a or b.
func AddF32(d *cuda.Device, y, a, b cuda.Buffer, n int) error {
	if n <= 0 || n%4 != 0 {
		return fmt.Errorf("gpu: add f32: %d elements, need a positive multiple of 4", n)
	}
	s := int64(n) * 4
	if err := kernArgs("add f32", "y", y, s, "a", a, s, "b", b, s); err != nil {
		return err
	}
	k, err := d.Kernel("residual", "residual_add_f32")
	if err != nil {
		return err
	}
	return d.Launch(k, D1((n/4+255)/256), D1(256), 0, y, a, b, n/4)
}
