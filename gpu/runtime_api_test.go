package gpu

import (
	"strings"
	"testing"
)

// weightsFromEnv keeps NF4 at 4 bits unless T2M_GPU_WEIGHTS says bf16, and names the variable and its
// values when it holds anything else.
func TestWeightsFromEnv(t *testing.T) {
	for v, want := range map[string]bool{"": true, "nf4": true, "bf16": false} {
		t.Setenv("T2M_GPU_WEIGHTS", v)
		got, err := weightsFromEnv()
		if err != nil || got != want {
			t.Errorf("T2M_GPU_WEIGHTS=%q: NF4 kept %v, %v; want %v", v, got, err, want)
		}
	}
	t.Setenv("T2M_GPU_WEIGHTS", "fp16")
	if _, err := weightsFromEnv(); err == nil || !strings.Contains(err.Error(), "T2M_GPU_WEIGHTS") || !strings.Contains(err.Error(), "bf16") {
		t.Errorf("T2M_GPU_WEIGHTS=fp16: error %v, want one naming the variable and its values", err)
	}
}
