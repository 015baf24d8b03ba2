//go:build t2mcuda

package gpu

import (
	"testing"

	"github.com/t2m/t2m/train/traintest"
)

// TestTrajectoryParity trains the trajectory fixture's run (train/testdata/trajectory: 28 updates of LoRA
// r=4 on the tiny Qwen2 from the committed initial adapter, dropout 0) through train.Run on the "cuda"
// device's backend (bf16 weights and activations, fp32 AdamW on the device) and compares it with HF PEFT +
// torch AdamW in fp32: per update loss and pre-clip grad norm within 1e-2 relative, the lr equal up to
// double rounding, the final adapter within 3e-2 relative L2. It skips without a usable GPU, and until
// scripts/fixtures/make_trajectory_fixture.py has made the reference.
func TestTrajectoryParity(t *testing.T) {
	dev := gpuTrainDevice(t)
	traintest.Check(t, traintest.Dir(), dev.NewBackend, traintest.Tolerances{Update: 1e-2, Adapter: 3e-2, LR: 1e-12})
}
