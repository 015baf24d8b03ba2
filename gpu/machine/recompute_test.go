package machine

import (
	"slices"
	"testing"
)

// TestRecomputeScheduleSmall checks the schedule of a two-layer toy training graph by hand: the backward
// reads layer 1's a2 and layer 0's a1, so each is recomputed (from its checkpoint and the parameter) right
// before its first backward reader, which then reads the copy; b1/b2, read only by the forward, are not.
func TestRecomputeScheduleSmall(t *testing.T) {
	args := [][]int{
		{},      // 0 embedding output: checkpoint 0
		{},      // 1 a parameter (graph input)
		{0, 1},  // 2 a1 = f(h0, p)       layer 0
		{2},     // 3 b1 = g(a1)          layer 0
		{0, 3},  // 4 h1 = h0 + b1:       checkpoint 1
		{4, 1},  // 5 a2 = f(h1, p)       layer 1
		{5},     // 6 b2 = g(a2)          layer 1
		{4, 6},  // 7 h2 = h1 + b2:       checkpoint 2
		{7},     // 8 loss
		{},      // 9 seed
		{9, 7},  // 10 d(h2)              backward
		{10, 5}, // 11 d(a2) reads a2
		{11, 4}, // 12 d(h1) reads h1 (a checkpoint: not recomputed)
		{12, 2}, // 13 d(a1) reads a1
		{12},    // 14 d(p), reads a1 as an extra dependency
	}
	deps := make([][]int, len(args))
	deps[14] = []int{2}
	bwd := make([]bool, len(args))
	for i := 9; i < len(args); i++ {
		bwd[i] = true
	}
	s, err := RecomputeSchedule(args, deps, bwd, []int{0, 4, 7})
	if err != nil {
		t.Fatal(err)
	}
	wantSrc := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5, 11, 12, 2, 13, 14}
	if !slices.Equal(s.Src, wantSrc) || s.Recomputed != 2 {
		t.Fatalf("schedule %v (%d recomputed), want %v (2)", s.Src, s.Recomputed, wantSrc)
	}
	for e, want := range map[int][]int{
		11: {4, 1},   // a2 again from the checkpoint h1 and the parameter
		12: {10, 11}, // d(a2) reads the copy
		13: {12, 4},  // d(h1) reads the checkpoint itself
		14: {0, 1},   // a1 again from h0
		15: {13, 14},
		16: {13},
	} {
		if !slices.Equal(s.Args[e], want) {
			t.Errorf("entry %d (node %d) reads %v, want %v", e, s.Src[e], s.Args[e], want)
		}
	}
	if !slices.Equal(s.Deps[16], []int{14}) {
		t.Errorf("d(p)'s extra dependency is entry %v, want the copy of a1 (14)", s.Deps[16])
	}
}

// TestRecomputeScheduleSavesMemory builds a chain of L layers (each: norm, a wide hidden, its output, a
// residual add) with a backward that reads every layer's wide hidden, and plans its memory with and
// without recomputation: with it, the plan holds one layer's wide hidden instead of L, while every entry
// still reads only earlier entries (Liveness checks) and each backward step reads a copy made after the
// forward ended.
func TestRecomputeScheduleSavesMemory(t *testing.T) {
	const L, wide, narrow = 6, 100000, 10 // narrow tensors take one 256-byte alignment unit
	var args [][]int
	var size []int64
	node := func(bytes int64, in ...int) int {
		args = append(args, in)
		size = append(size, bytes)
		return len(args) - 1
	}
	h := node(narrow)
	hidden := []int{h}
	var wides []int
	for range L {
		n := node(narrow, h)
		w := node(wide, n)
		o := node(narrow, w)
		h = node(narrow, h, o)
		hidden = append(hidden, h)
		wides = append(wides, w)
	}
	fwdEnd := len(args)
	d := node(narrow, node(4), h) // seed, d(h_L)
	for l := L - 1; l >= 0; l-- {
		d = node(narrow, d, wides[l])
	}
	n := len(args)
	bwd := make([]bool, n)
	for i := fwdEnd; i < n; i++ {
		bwd[i] = true
	}
	plan := func(src []int, in [][]int) int64 {
		names, bytes := make([]string, len(src)), make([]int64, len(src))
		for e, i := range src {
			bytes[e] = size[i]
		}
		ts, _, err := Liveness(names, bytes, in, make([]bool, len(src)), make([]bool, len(src)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanMemory(ts)
		if err != nil {
			t.Fatal(err)
		}
		return p.Floor
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	without := plan(all, args)
	s, err := RecomputeSchedule(args, make([][]int, n), bwd, hidden)
	if err != nil {
		t.Fatal(err)
	}
	with := plan(s.Src, s.Args)
	t.Logf("%d layers: most live bytes %d without recomputation, %d with (%d steps recomputed)", L, without, with, s.Recomputed)
	if s.Recomputed != 2*L { // norm and wide hidden of every layer
		t.Errorf("%d steps recomputed, want %d", s.Recomputed, 2*L)
	}
	if without < L*wide || with >= 2*wide {
		t.Errorf("most live bytes %d without and %d with recomputation: want ≥ %d and < %d", without, with, L*wide, 2*wide)
	}
	lastFwd := slices.Index(s.Src, fwdEnd-1)
	for e, i := range s.Src {
		if !bwd[i] || i <= fwdEnd+1 { // the seed and d(h_L), which reads the last checkpoint
			continue
		}
		if w := s.Args[e][1]; w <= lastFwd || size[s.Src[w]] != wide {
			t.Errorf("backward entry %d reads entry %d (node %d), not a recomputed wide hidden", e, w, s.Src[w])
		}
	}
}

// TestRecomputeScheduleErrors: checkpoints out of order or in the backward, and a node reading a later one.
func TestRecomputeScheduleErrors(t *testing.T) {
	args := [][]int{{}, {0}, {1}}
	for name, c := range map[string]struct {
		args   [][]int
		bwd    []bool
		hidden []int
	}{
		"unordered checkpoints":   {args, []bool{false, false, false}, []int{1, 0}},
		"checkpoint in backward":  {args, []bool{false, false, true}, []int{0, 2}},
		"checkpoint out of range": {args, []bool{false, false, false}, []int{0, 3}},
		"reads a later node":      {[][]int{{1}, {}, {}}, []bool{false, false, false}, []int{0}},
	} {
		if _, err := RecomputeSchedule(c.args, make([][]int, len(c.args)), c.bwd, c.hidden); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
