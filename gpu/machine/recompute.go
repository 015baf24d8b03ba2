package machine

import "fmt"

// Schedule is the execution order of a training graph with activation recomputation (gradient
// checkpointing): the forward as before, then the backward, where right before the first backward step
// that reads an activation of layer l, the layer's forward steps that the backward needs run again from
// the layer's input (a checkpoint, kept alive from the forward). The forward's copies of those activations
// are then read by no backward step, so the memory plan frees them when the layer's forward ends: the
// training graph holds the checkpoints of all layers plus one layer's activations, not every layer's.
//
// Entries are steps in execution order. Src[e] is the graph node entry e runs (a position in the graph's
// topological order); a node that is recomputed appears twice. Args[e] and Deps[e] are entry e's inputs
// and extra liveness reads, as entries.
type Schedule struct {
	Src        []int
	Args, Deps [][]int
	Recomputed int // entries that are recomputations
}

// RecomputeSchedule builds the Schedule of a graph of n nodes in topological order: args[i] are node i's
// inputs and deps[i] its extra reads (positions); bwd[i] marks the backward nodes (everything computed
// from the loss gradient); hidden lists the checkpoints in order: the embedding's output, then each
// layer's output. Layer l's steps are the forward nodes both computed from hidden[l] and read on the way
// to hidden[l+1]; the recomputed ones are those the backward reads and what they are computed from inside
// the layer. Without checkpoints the Schedule is the graph's own order.
func RecomputeSchedule(args, deps [][]int, bwd []bool, hidden []int) (Schedule, error) {
	n := len(args)
	if len(deps) != n || len(bwd) != n {
		return Schedule{}, fmt.Errorf("gpu: recompute: %d nodes, %d dependency lists, %d backward flags", n, len(deps), len(bwd))
	}
	for k, h := range hidden {
		if h < 0 || h >= n || bwd[h] || (k > 0 && h <= hidden[k-1]) {
			return Schedule{}, fmt.Errorf("gpu: recompute: checkpoint %d at node %d: not a forward node after the previous one", k, h)
		}
	}
	readers := make([][]int, n) // forward edges, for descendants
	for i, a := range args {
		for _, j := range a {
			if j < 0 || j >= i {
				return Schedule{}, fmt.Errorf("gpu: recompute: node %d reads node %d: not an earlier node", i, j)
			}
			readers[j] = append(readers[j], i)
		}
	}
	layer := make([]int, n) // layer of each forward node inside a layer, else −1
	for i := range layer {
		layer[i] = -1
	}
	isHidden := make([]bool, n)
	for _, h := range hidden {
		isHidden[h] = true
	}
	for l := 0; l+1 < len(hidden); l++ {
		down := reach(hidden[l], readers, func(i int) bool { return !bwd[i] && !isHidden[i] })
		up := reach(hidden[l+1], args, func(i int) bool { return !isHidden[i] })
		for i := range n {
			if down[i] && up[i] && !isHidden[i] {
				layer[i] = l
			}
		}
	}
	reads := func(j int) []int { return append(append([]int{}, args[j]...), deps[j]...) }
	// The layer nodes the backward reads, closed over their inputs inside the same layer.
	need := make([]bool, n)
	var stack []int
	for j := range n {
		if !bwd[j] {
			continue
		}
		for _, i := range reads(j) {
			if layer[i] >= 0 && !need[i] {
				need[i] = true
				stack = append(stack, i)
			}
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, a := range args[i] {
			if layer[a] == layer[i] && !need[a] {
				need[a] = true
				stack = append(stack, a)
			}
		}
	}
	var s Schedule
	entry := make([]int, n) // node → the entry backward steps read it from
	done := make([]bool, len(hidden))
	remap := func(v []int) []int {
		out := make([]int, len(v))
		for k, i := range v {
			out[k] = entry[i]
		}
		return out
	}
	add := func(i int) {
		entry[i] = len(s.Src)
		s.Src = append(s.Src, i)
		s.Args = append(s.Args, remap(args[i]))
		s.Deps = append(s.Deps, remap(deps[i]))
	}
	for j := range n {
		if bwd[j] {
			for _, i := range reads(j) {
				if l := layer[i]; l >= 0 && need[i] && !done[l] {
					done[l] = true
					for k := range n { // the layer again, in the graph's order, reading the copies
						if layer[k] == l && need[k] {
							add(k)
							s.Recomputed++
						}
					}
				}
			}
		}
		add(j)
	}
	return s, nil
}

// reach marks start and every node reachable from it along edges through nodes that pass ok.
func reach(start int, edges [][]int, ok func(int) bool) []bool {
	seen := make([]bool, len(edges))
	seen[start] = true
	stack := []int{start}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, j := range edges[i] {
			if !seen[j] && ok(j) {
				seen[j] = true
				stack = append(stack, j)
			}
		}
	}
	return seen
}
