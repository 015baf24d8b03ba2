package machine

import (
	"slices"
	"testing"
)

// TestChooseCache: the weight cache takes the smallest weights first (ties in graph order), stops at the
// budget on bf16 bytes and at the spare memory on what each copy adds over its NF4 bytes.
func TestChooseCache(t *testing.T) {
	// A 7B-like layer, in graph order: q, k, v, o, gate, up, down (bf16 bytes; NF4 is about a quarter).
	dense := []int64{100, 14, 14, 100, 530, 530, 530}
	packed := make([]int64, len(dense))
	for k, d := range dense {
		packed[k] = d / 4
	}
	for _, c := range []struct {
		budget, spare int64
		want          []bool
	}{
		{0, 1 << 40, []bool{false, false, false, false, false, false, false}},
		{1 << 40, -5, []bool{false, false, false, false, false, false, false}}, // the plan alone does not fit
		{1 << 40, 1 << 40, []bool{true, true, true, true, true, true, true}},
		{28, 1 << 40, []bool{false, true, true, false, false, false, false}},              // k and v only
		{128, 1 << 40, []bool{true, true, true, false, false, false, false}},              // q before o (graph order)
		{1 << 40, 14 - 3 + 14 - 3, []bool{false, true, true, false, false, false, false}}, // spare: k and v add 11 each
		{1 << 40, 14 - 3 + 14 - 3 + 74, []bool{false, true, true, false, false, false, false}},
		{1 << 40, 14 - 3 + 14 - 3 + 75, []bool{true, true, true, false, false, false, false}},
		{27, 1 << 40, []bool{false, true, false, false, false, false, false}}, // the second 14 does not fit: stop
		{1000, 1 << 40, []bool{true, true, true, true, true, false, false}},   // 228 + 530 ≤ 1000 < 228 + 1060
	} {
		if got := chooseCache(dense, packed, c.budget, c.spare); !slices.Equal(got, c.want) {
			t.Errorf("budget %d, spare %d: cached %v, want %v", c.budget, c.spare, got, c.want)
		}
	}
}
