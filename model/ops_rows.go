package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GatherRowsOp keeps the rows the head reads (GatherRows): out[p] = x[index[p]], a zero row where
// index[p] = −1. Inputs x [N, C] f32, index int32 [B, T] (HeadRows' layout); output [B·T, C].
// Backward: ScatterRowsOp(dy, index) → dx [N, C].
type GatherRowsOp struct {
	opBase
	Name string // module path, e.g. model.layers.27.head_rows.attn
}

// Arity is the number of inputs.
func (op *GatherRowsOp) Arity() int { return 2 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *GatherRowsOp) Type() hm.Type { return hm.NewFnType(f32T(2), i32T(2), f32T(2)) }

// InferShape is [B·T, C].
func (op *GatherRowsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 2, in)
	if err != nil {
		return nil, err
	}
	if len(s[0]) != 2 || len(s[1]) != 2 {
		return nil, fmt.Errorf("%v: x %v and index %v, want [N, C] and [B, T]", op, s[0], s[1])
	}
	return tensor.Shape{s[1].TotalSize(), s[0][1]}, nil
}

// Do computes GatherRows.
func (op *GatherRowsOp) Do(vals ...G.Value) (G.Value, error) {
	x, s, index, err := rowsInputs(op, "x", vals)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(index)*s[1]) // [B·T, C]
	if err := GatherRows(out, x, index, s[0], s[1]); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return dense(out, len(index), s[1]), nil
}

// DiffWRT says which inputs get a gradient: x, not the index.
func (op *GatherRowsOp) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff is dx = ScatterRows(dy, index) into x's N rows.
func (op *GatherRowsOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&ScatterRowsOp{Name: op.Name, Rows: in[0].Shape()[0]}, grad, in[1])
	return G.Nodes{dx, nil}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *GatherRowsOp) String() string { return "GatherRows{" + op.Name + "}" }

// WriteHash writes String() into h.
func (op *GatherRowsOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *GatherRowsOp) Hashcode() uint32 { return hashCode(op.String()) }

// ScatterRowsOp is the backward of GatherRowsOp (ScatterRows): dx = 0, dx[index[p]] = dy[p] where
// index[p] ≥ 0 (each row named once at most). Inputs dy [B·T, C] f32, index int32 [B, T]; output
// [Rows, C]. Its own backward is GatherRowsOp.
type ScatterRowsOp struct {
	opBase
	Name string // the GatherRowsOp's module path
	Rows int    // N, the rows of the gather's input
}

// Arity is the number of inputs.
func (op *ScatterRowsOp) Arity() int { return 2 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *ScatterRowsOp) Type() hm.Type { return hm.NewFnType(f32T(2), i32T(2), f32T(2)) }

// InferShape is [Rows, C].
func (op *ScatterRowsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 2, in)
	if err != nil {
		return nil, err
	}
	if len(s[0]) != 2 || s[0][0] != s[1].TotalSize() {
		return nil, fmt.Errorf("%v: dy %v and index %v, want [B·T, C] and [B, T]", op, s[0], s[1])
	}
	return tensor.Shape{op.Rows, s[0][1]}, nil
}

// Do computes ScatterRows.
func (op *ScatterRowsOp) Do(vals ...G.Value) (G.Value, error) {
	dy, s, index, err := rowsInputs(op, "dy", vals)
	if err != nil {
		return nil, err
	}
	if s[0] != len(index) {
		return nil, fmt.Errorf("%v: dy has shape %v, want [%d, C]", op, s, len(index))
	}
	dx := make([]float32, op.Rows*s[1]) // [N, C]
	if err := ScatterRows(dx, dy, index, op.Rows, s[1]); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return dense(dx, op.Rows, s[1]), nil
}

// DiffWRT says which inputs get a gradient: dy, not the index.
func (op *ScatterRowsOp) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff is d(dy) = GatherRows(grad, index).
func (op *ScatterRowsOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&GatherRowsOp{Name: op.Name + ".adjoint"}, grad, in[1])
	return G.Nodes{d, nil}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *ScatterRowsOp) String() string { return fmt.Sprintf("ScatterRows{%s,%d}", op.Name, op.Rows) }

// WriteHash writes String() into h.
func (op *ScatterRowsOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *ScatterRowsOp) Hashcode() uint32 { return hashCode(op.String()) }

// rowsInputs unpacks the inputs of GatherRowsOp and ScatterRowsOp: rows [·, C] f32 (named what) and the
// index int32 [B, T].
func rowsInputs(op fmt.Stringer, what string, vals []G.Value) ([]float32, tensor.Shape, []int32, error) {
	if len(vals) != 2 {
		return nil, nil, nil, fmt.Errorf("%v: %d inputs, want 2", op, len(vals))
	}
	d, s, err := f32Data(op, what, vals[0])
	if err != nil {
		return nil, nil, nil, err
	}
	if len(s) != 2 {
		return nil, nil, nil, fmt.Errorf("%v: %s has shape %v, want [rows, C]", op, what, s)
	}
	index, _, _, err := batchSeq(op, "index", vals[1])
	if err != nil {
		return nil, nil, nil, err
	}
	return d, s, index, nil
}
