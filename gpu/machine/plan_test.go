package machine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
)

// checkPlan fails when two tensors with intersecting lifetimes overlap in memory, or an offset is unaligned
// or out of the plan's total.
func checkPlan(t *testing.T, ts []PlanTensor, p MemPlan) {
	t.Helper()
	for i, a := range ts {
		if p.Offsets[i]%cuda.Align != 0 || p.Offsets[i] < 0 || p.Offsets[i]+a.Bytes > p.Total {
			t.Fatalf("tensor %d at %d (+%d) outside [0, %d) or unaligned", i, p.Offsets[i], a.Bytes, p.Total)
		}
		for j := i + 1; j < len(ts); j++ {
			b := ts[j]
			timeOverlap := a.First <= b.Last && b.First <= a.Last
			memOverlap := p.Offsets[i] < p.Offsets[j]+b.Bytes && p.Offsets[j] < p.Offsets[i]+a.Bytes
			if timeOverlap && memOverlap {
				t.Fatalf("tensors %d %+v at %d and %d %+v at %d overlap", i, a, p.Offsets[i], j, b, p.Offsets[j])
			}
		}
	}
	if p.Total < p.Floor {
		t.Fatalf("total %d below the floor %d", p.Total, p.Floor)
	}
}

func TestPlanMemoryRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 50 {
		n := 1 + rng.IntN(200)
		ts := make([]PlanTensor, n)
		for i := range ts {
			first := rng.IntN(100)
			ts[i] = PlanTensor{Name: fmt.Sprint(i), Bytes: 1 + rng.Int64N(1<<20), First: first, Last: first + rng.IntN(30)}
		}
		p, err := PlanMemory(ts)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, ts, p)
		var sum int64
		for _, x := range ts {
			sum += cuda.AlignUp(x.Bytes)
		}
		if p.Total > sum {
			t.Errorf("trial %d: total %d exceeds the sum of sizes %d", trial, p.Total, sum)
		}
		if float64(p.Total) > 1.5*float64(p.Floor) {
			t.Logf("trial %d: total %d is %.2f× the floor", trial, p.Total, float64(p.Total)/float64(p.Floor))
		}
	}
}

// TestPlanMemoryChain: a chain of equal tensors, each read only by the next step, needs two buffers.
func TestPlanMemoryChain(t *testing.T) {
	const n, size = 100, 1 << 20
	names, bytes, inputs := make([]string, n), make([]int64, n), make([][]int, n)
	for i := range n {
		names[i], bytes[i] = fmt.Sprint("x", i), size
		if i > 0 {
			inputs[i] = []int{i - 1}
		}
	}
	keep := make([]bool, n)
	keep[n-1] = true
	ts, node, err := Liveness(names, bytes, inputs, make([]bool, n), keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != n || node[7] != 7 || ts[7].Last != 8 || ts[n-1].Last != n-1 {
		t.Fatalf("liveness: %d tensors, tensor 7 %+v", len(ts), ts[7])
	}
	p, err := PlanMemory(ts)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, ts, p)
	if p.Total != 2*size || p.Floor != 2*size {
		t.Errorf("chain of %d: total %d, floor %d, want %d", n, p.Total, p.Floor, 2*size)
	}
}

// TestPlanMemorySaved: a forward whose outputs are all read by a mirrored backward (no reuse possible in
// the forward) needs them all at the turning point; the backward's temporaries reuse the freed space.
func TestPlanMemorySaved(t *testing.T) {
	const L, size = 10, 1 << 16
	var names []string
	var bytes []int64
	var inputs [][]int
	for l := range L { // forward: node l
		names, bytes = append(names, fmt.Sprint("act", l)), append(bytes, size)
		if l > 0 {
			inputs = append(inputs, []int{l - 1})
		} else {
			inputs = append(inputs, nil)
		}
	}
	for l := L - 1; l >= 0; l-- { // backward: grad of layer l reads act l and the previous grad
		ins := []int{l}
		if len(names) > L {
			ins = append(ins, len(names)-1)
		}
		names, bytes, inputs = append(names, fmt.Sprint("grad", l)), append(bytes, size), append(inputs, ins)
	}
	n := len(names)
	ts, _, err := Liveness(names, bytes, inputs, make([]bool, n), make([]bool, n))
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanMemory(ts)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, ts, p)
	if p.Total != (L+1)*size {
		t.Errorf("total %d, want %d (all activations + one gradient)", p.Total, (L+1)*size)
	}
}

func TestLivenessErrors(t *testing.T) {
	if _, _, err := Liveness([]string{"a", "b"}, []int64{1, 1}, [][]int{nil, {1}}, make([]bool, 2), make([]bool, 2)); err == nil {
		t.Error("a step reading itself was accepted")
	}
	if _, err := PlanMemory([]PlanTensor{{Name: "x", Bytes: 0, First: 0, Last: 0}}); err == nil {
		t.Error("an empty tensor was accepted")
	}
}
