package machine

import (
	"fmt"
	"sort"

	"github.com/t2m/t2m/gpu/cuda"
)

// PlanTensor is one buffer of a step for the memory plan: Bytes long, written by step First and last read
// by step Last (steps are positions in the graph's topological order). Pinned tensors (weights, LoRA
// parameters, optimizer state) are not planned; they get their own arena buffers.
type PlanTensor struct {
	Name        string
	Bytes       int64
	First, Last int
}

// MemPlan places a step's tensors in one arena region: tensor i lives at [Offsets[i], Offsets[i]+Bytes),
// every offset a multiple of 256, and no two tensors whose step ranges intersect share a byte. Total is
// the region's size (what Arena.Reserve gets); Floor is the most bytes live at any one step, a lower bound
// for any plan.
type MemPlan struct {
	Offsets      []int64
	Total, Floor int64
}

// PlanMemory assigns offsets by greedy best-fit in order of decreasing size (the "greedy by size"
// strategy of TFLite's arena planner): each tensor takes the lowest-addressed gap, among the tensors
// already placed whose lifetimes intersect its own, that it fits in.
func PlanMemory(ts []PlanTensor) (MemPlan, error) {
	plan := MemPlan{Offsets: make([]int64, len(ts))}
	order := make([]int, len(ts))
	maxStep := 0
	for i, t := range ts {
		if t.Bytes <= 0 || t.First < 0 || t.Last < t.First {
			return MemPlan{}, fmt.Errorf("gpu: memory plan: tensor %d %q: %d bytes, steps %d..%d", i, t.Name, t.Bytes,
				t.First, t.Last)
		}
		order[i] = i
		maxStep = max(maxStep, t.Last)
	}
	// Floor: the live bytes at the busiest step, by a sweep over lifetime starts and ends.
	delta := make([]int64, maxStep+2)
	for _, t := range ts {
		delta[t.First] += cuda.AlignUp(t.Bytes)
		delta[t.Last+1] -= cuda.AlignUp(t.Bytes)
	}
	var live int64
	for _, d := range delta {
		live += d
		plan.Floor = max(plan.Floor, live)
	}
	sort.SliceStable(order, func(a, b int) bool {
		ta, tb := ts[order[a]], ts[order[b]]
		if ta.Bytes != tb.Bytes {
			return ta.Bytes > tb.Bytes
		}
		return ta.First < tb.First
	})
	type span struct{ off, end int64 }
	var placed []int // indices into ts, already placed
	for _, i := range order {
		t := ts[i]
		size := cuda.AlignUp(t.Bytes)
		var busy []span
		for _, j := range placed {
			if ts[j].First <= t.Last && t.First <= ts[j].Last {
				busy = append(busy, span{plan.Offsets[j], plan.Offsets[j] + cuda.AlignUp(ts[j].Bytes)})
			}
		}
		sort.Slice(busy, func(a, b int) bool { return busy[a].off < busy[b].off })
		off, best, bestGap := int64(0), int64(-1), int64(-1)
		for _, b := range busy {
			if gap := b.off - off; gap >= size && (bestGap < 0 || gap < bestGap) {
				best, bestGap = off, gap
			}
			off = max(off, b.end)
		}
		if best < 0 {
			best = off // after every live tensor
		}
		plan.Offsets[i] = best
		plan.Total = max(plan.Total, best+size)
		placed = append(placed, i)
	}
	return plan, nil
}

// Liveness turns a topologically ordered graph into PlanTensors: node i's output (bytes[i], skipped where
// pinned[i] or bytes[i] == 0) lives from step i to the last step that reads it (inputs[j] lists the nodes
// that step j reads); an output nobody reads lives one step (it is still written). keep marks outputs
// needed after the step (the loss): they live to the end.
func Liveness(names []string, bytes []int64, inputs [][]int, pinned, keep []bool) ([]PlanTensor, []int, error) {
	n := len(bytes)
	if len(names) != n || len(inputs) != n || len(pinned) != n || len(keep) != n {
		return nil, nil, fmt.Errorf("gpu: liveness: %d names, %d sizes, %d input lists, %d pinned, %d keep flags",
			len(names), n, len(inputs), len(pinned), len(keep))
	}
	last := make([]int, n)
	for i := range last {
		last[i] = i
	}
	for j, ins := range inputs {
		for _, i := range ins {
			if i < 0 || i >= j {
				return nil, nil, fmt.Errorf("gpu: liveness: step %d (%s) reads node %d: not an earlier node", j, names[j], i)
			}
			last[i] = max(last[i], j)
		}
	}
	var ts []PlanTensor
	var node []int // node of each PlanTensor
	for i := range n {
		if pinned[i] || bytes[i] == 0 {
			continue
		}
		l := last[i]
		if keep[i] {
			l = n - 1
		}
		ts = append(ts, PlanTensor{Name: names[i], Bytes: bytes[i], First: i, Last: l})
		node = append(node, i)
	}
	return ts, node, nil
}
