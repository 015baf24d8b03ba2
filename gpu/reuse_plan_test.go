package gpu

import (
	"slices"
	"testing"
)

// planReuse picks the longest cached prefix among the slots this prefill does not write, the prompt's own
// slot and the earlier prompts of the call computed whole, always leaves the last token to compute, prefers
// the own slot on ties, and gives up below minKeep.
func TestPlanReuse(t *testing.T) {
	sys := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	cached := [][]int32{
		append(slices.Clone(sys), 20, 21, 22),     // slot 0: a live sequence of another collection
		append(slices.Clone(sys), 30, 31, 32, 33), // slot 1: free, the same collection as prompt a
		append(slices.Clone(sys), 30, 31, 40),     // slot 2: target of prompt b (stale)
		append(slices.Clone(sys), 30, 31, 32, 33), // slot 3: target of prompt c, which shares all of it
		{9, 9}, // slot 4: target of prompt d
		nil,    // slot 5: target of prompt a, never used
	}
	a := append(slices.Clone(sys), 30, 31, 32, 50)     // best: slot 1, 11 tokens
	b := append(slices.Clone(sys), 30, 31, 32, 33, 60) // slot 3 holds 12 in common but is prompt c's target: slot 1
	c := append(slices.Clone(sys), 30, 31, 32, 33)     // its own slot 3 holds all of it: keep 11 (the last is computed); own slot wins the tie with slot 1
	d := []int32{7, 7, 7}                              // nothing in common
	got := planReuse(cached, []int32{5, 2, 3, 4}, [][]int32{a, b, c, d}, 4)
	want := []reusePlan{{donor: 1, keep: 11}, {donor: 1, keep: 12}, {donor: 3, keep: 11}, {donor: -1}}
	if !slices.Equal(got, want) {
		t.Errorf("plans %v, want %v", got, want)
	}
	// Leaders: a prompt computed whole in this prefill gives its prefix to the later prompts of the call (its
	// slot's old content does not count), and a prompt that finds nothing long enough becomes a leader itself.
	e := append(slices.Clone(sys), 70, 71, 72, 73, 74)    // nothing cached shares more than sys: leader
	f := append(slices.Clone(sys), 70, 71, 72, 73, 75)    // e's slot 2 will hold e: 12 in common
	h := append(slices.Clone(sys), 70, 71, 72, 73, 74, 1) // all of e, and e's 13 beat f's (f is not a leader)
	got = planReuse(cached, []int32{2, 3, 4}, [][]int32{e, f, h}, 10)
	want = []reusePlan{{donor: -1}, {donor: 2, keep: 12}, {donor: 2, keep: 13}}
	if !slices.Equal(got, want) {
		t.Errorf("with leaders: plans %v, want %v", got, want)
	}
	// Below minKeep nothing is reused; an empty cache state reuses nothing.
	if got := planReuse(cached, []int32{5}, [][]int32{a}, 12); !slices.Equal(got, []reusePlan{{donor: -1}}) {
		t.Errorf("with minKeep 12: %v", got)
	}
	if got := planReuse(make([][]int32, 3), []int32{0}, [][]int32{a}, 1); !slices.Equal(got, []reusePlan{{donor: -1}}) {
		t.Errorf("empty caches: %v", got)
	}
}
