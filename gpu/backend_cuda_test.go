//go:build t2mcuda

package gpu

import "testing"

// TestRegistered checks that the t2mcuda build registers its backend at init, with or without a GPU (gpu/cuda's
// TestNoGPUError checks what Open says without one).
func TestRegistered(t *testing.T) {
	if _, err := Get(); err != nil {
		t.Errorf("the t2mcuda build registered no backend: %v", err)
	}
}
