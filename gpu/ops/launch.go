//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// D1 is a one-dimensional Dim3.
func D1(x int) cuda.Dim3 { return cuda.Dim3{X: x, Y: 1, Z: 1} }

// kernArgs reports the first buffer that is smaller than its op needs; each check is (name, buffer, bytes).
// A zero Buffer is accepted where bytes is 0 (an optional output).
func kernArgs(op string, checks ...any) error {
	if len(checks)%3 != 0 {
		return fmt.Errorf("gpu: %s: %d argument-check values, want triples", op, len(checks))
	}
	for i := 0; i+2 < len(checks); i += 3 {
		name, ok1 := checks[i].(string)
		b, ok2 := checks[i+1].(cuda.Buffer)
		n, ok3 := checks[i+2].(int64)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("gpu: %s: argument check %d is not (string, Buffer, int64)", op, i/3)
		}
		if b.Bytes < n {
			return fmt.Errorf("gpu: %s: buffer %s holds %d bytes, needs %d", op, name, b.Bytes, n)
		}
	}
	return nil
}
