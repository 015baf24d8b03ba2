package lora

import (
	"strings"
	"testing"
)

// The rank is bounded by the smallest side of every adapted projection (k_proj's out = 32 in tinyDims),
// and a rank past it is refused naming that projection, before anything is allocated.
func TestNewRankBound(t *testing.T) {
	if _, err := New(Config{R: 32}, 2, tinyDims(2), 1); err != nil {
		t.Fatalf("r=32: %v", err)
	}
	for _, r := range []int{33, 100_000_000} {
		_, err := New(Config{R: r}, 2, tinyDims(2), 1)
		if err == nil || !strings.Contains(err.Error(), "k_proj of layer 0 ([out=32, in=64])") || !strings.Contains(err.Error(), "here 32") {
			t.Errorf("r=%d: error %v, want one naming k_proj and the bound 32", r, err)
		}
	}
}
