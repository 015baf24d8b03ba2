package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DropoutState is shared by every DropoutOp of a graph: the training step that seeds this run's masks.
type DropoutState struct {
	Step uint64
}

// DropoutOp is LoRA's input dropout in training (DropoutForward): out = x·keep/(1−P) with
// keep_i = DropoutKeep(DropoutSeed(State.Step, Name), i, P) over the flattened [N, In] input.
// Input x [N, In]; output [N, In]. Backward: the same op with Grad set, applied to dy (same mask).
type DropoutOp struct {
	opBase
	Name  string        // module path + ".lora_dropout", part of the mask seed
	P     float32       // drop probability, in (0, 1)
	State *DropoutState // shared: set Step before each run
	Grad  bool          // the backward twin (same mask, applied to dy)
}

// Seed is this run's mask seed.
func (op *DropoutOp) Seed() uint64 { return DropoutSeed(op.State.Step, op.Name) }

// Arity is the number of inputs.
func (op *DropoutOp) Arity() int { return 1 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *DropoutOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2)) }

// InferShape is the output shape for the given input shapes.
func (op *DropoutOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 1, in)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

// Do computes DropoutForward.
func (op *DropoutOp) Do(vals ...G.Value) (G.Value, error) {
	d, s, err := inputs(op, vals, "x")
	if err != nil {
		return nil, err
	}
	if !(op.P > 0 && op.P < 1) {
		return nil, fmt.Errorf("%v: drop probability %g must be in (0, 1)", op, op.P)
	}
	out := make([]float32, len(d[0])) // [N, In]
	DropoutForward(out, d[0], op.P, op.Seed())
	return dense(out, s[0]...), nil
}

// DiffWRT says which inputs get a gradient.
func (op *DropoutOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff applies the same mask to the gradient.
func (op *DropoutOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	back := *op
	back.Grad = true
	dx, err := G.ApplyOp(&back, grad)
	return G.Nodes{dx}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *DropoutOp) String() string {
	return fmt.Sprintf("Dropout{%s,%g,grad=%v}", op.Name, op.P, op.Grad)
}

// WriteHash writes String() into h.
func (op *DropoutOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *DropoutOp) Hashcode() uint32 { return hashCode(op.String()) }
