package model

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds what every op shares: the gorgonia.Op boilerplate, types and value conversions.
// The ops themselves are in ops_*.go; each one's Do calls the exported CPU function named in doc.go.

// opBase gives the Op methods that are the same for every op of this package: a fresh output, no cgo,
// no input overwritten.
type opBase struct{}

// ReturnsPtr is false: Do always returns a freshly allocated value.
func (opBase) ReturnsPtr() bool { return false }

// CallsExtern is false: the CPU implementations are pure Go.
func (opBase) CallsExtern() bool { return false }

// OverwritesInput is −1: no op writes into its inputs.
func (opBase) OverwritesInput() int { return -1 }

// hashString writes s into h; ops hash their String(), which names every attribute and the module path.
func hashString(h hash.Hash, s string) { _, _ = h.Write([]byte(s)) }

// hashCode is the FNV-1a hash of s.
func hashCode(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

func f32T(dims int) hm.Type { return G.TensorType{Dims: dims, Of: G.Float32} }
func i32T(dims int) hm.Type { return G.TensorType{Dims: dims, Of: G.Int32} }

// shapesOf converts gorgonia's DimSizers to shapes.
func shapesOf(op fmt.Stringer, want int, in []G.DimSizer) ([]tensor.Shape, error) {
	if len(in) != want {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(in), want)
	}
	return G.DimSizersToShapes(in)
}

// f32Data returns the float32 backing of a tensor or scalar value.
func f32Data(op fmt.Stringer, what string, v G.Value) ([]float32, tensor.Shape, error) {
	switch t := v.(type) {
	case *G.F32:
		return []float32{float32(*t)}, tensor.ScalarShape(), nil
	case tensor.Tensor:
		d, ok := t.Data().([]float32)
		if !ok {
			if f, ok := t.Data().(float32); ok {
				return []float32{f}, t.Shape(), nil
			}
			return nil, nil, fmt.Errorf("%v: input %s is %v, want float32", op, what, t.Dtype())
		}
		return d, t.Shape(), nil
	}
	return nil, nil, fmt.Errorf("%v: input %s is a %T, want a float32 tensor", op, what, v)
}

// i32Data returns the int32 backing and shape of a tensor value.
func i32Data(op fmt.Stringer, what string, v G.Value) ([]int32, tensor.Shape, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, nil, fmt.Errorf("%v: input %s is a %T, want an int32 tensor", op, what, v)
	}
	d, ok := t.Data().([]int32)
	if !ok {
		return nil, nil, fmt.Errorf("%v: input %s is %v, want int32", op, what, t.Dtype())
	}
	return d, t.Shape(), nil
}

// dense wraps data as a float32 tensor of that shape.
func dense(data []float32, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// inputs unpacks float32 inputs, checking their element counts.
func inputs(op fmt.Stringer, vals []G.Value, names ...string) ([][]float32, []tensor.Shape, error) {
	if len(vals) != len(names) {
		return nil, nil, fmt.Errorf("%v: got %d inputs, want %d (%v)", op, len(vals), len(names), names)
	}
	out := make([][]float32, len(vals))
	shapes := make([]tensor.Shape, len(vals))
	for i, v := range vals {
		d, s, err := f32Data(op, names[i], v)
		if err != nil {
			return nil, nil, err
		}
		out[i], shapes[i] = d, s
	}
	return out, shapes, nil
}

// need checks that a slice has n elements.
func need(op fmt.Stringer, what string, d []float32, n int) error {
	if len(d) != n {
		return fmt.Errorf("%v: %s has %d elements, want %d", op, what, len(d), n)
	}
	return nil
}

// batchSeq reads B and T from a [B, T] int32 input.
func batchSeq(op fmt.Stringer, what string, v G.Value) ([]int32, int, int, error) {
	d, s, err := i32Data(op, what, v)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(s) != 2 {
		return nil, 0, 0, fmt.Errorf("%v: %s has shape %v, want [B, T]", op, what, s)
	}
	return d, s[0], s[1], nil
}

// notDifferentiable is the SymDiff of ops whose inputs never need a gradient.
func notDifferentiable(op fmt.Stringer) error {
	return fmt.Errorf("%v is not differentiable", op)
}

// AddOp is the residual connection: out = a + b. Inputs a, b [N, H]; output [N, H].
// Backward: both inputs receive the output gradient unchanged.
type AddOp struct {
	opBase
	Name string // module path, e.g. model.layers.0.residual_attn
}

// Arity is 2.
func (op *AddOp) Arity() int { return 2 }

// Type is (Tensor2 f32, Tensor2 f32) → Tensor2 f32.
func (op *AddOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2), f32T(2)) }

// InferShape returns the shape of a, which must equal b's.
func (op *AddOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 2, in)
	if err != nil {
		return nil, err
	}
	if !s[0].Eq(s[1]) {
		return nil, fmt.Errorf("%v: shapes %v and %v differ", op, s[0], s[1])
	}
	return s[0].Clone(), nil
}

// Do computes AddForward.
func (op *AddOp) Do(vals ...G.Value) (G.Value, error) {
	d, s, err := inputs(op, vals, "a", "b")
	if err != nil {
		return nil, err
	}
	if err := need(op, "b", d[1], len(d[0])); err != nil {
		return nil, err
	}
	out := make([]float32, len(d[0])) // [N, H]
	AddForward(out, d[0], d[1])
	return dense(out, s[0]...), nil
}

// DiffWRT: both inputs.
func (op *AddOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff passes the gradient to both inputs.
func (op *AddOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *AddOp) String() string { return "Add{" + op.Name + "}" }

// WriteHash writes String() into h.
func (op *AddOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *AddOp) Hashcode() uint32 { return hashCode(op.String()) }

// SliceOp extracts a contiguous piece of a packed 1-D gradient: out = in[Offset : Offset+prod(Shape)]
// reshaped to Shape. On a GPU it is a view (pointer offset), no kernel.
type SliceOp struct {
	opBase
	Offset int
	Shape  tensor.Shape
}

// Arity is 1.
func (op *SliceOp) Arity() int { return 1 }

// Type is Tensor1 f32 → TensorK f32.
func (op *SliceOp) Type() hm.Type { return hm.NewFnType(f32T(1), f32T(len(op.Shape))) }

// InferShape returns Shape after checking that the piece fits.
func (op *SliceOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 1, in)
	if err != nil {
		return nil, err
	}
	if op.Offset+op.Shape.TotalSize() > s[0].TotalSize() {
		return nil, fmt.Errorf("%v: input of %d elements is too short", op, s[0].TotalSize())
	}
	return op.Shape.Clone(), nil
}

// Do copies the piece.
func (op *SliceOp) Do(vals ...G.Value) (G.Value, error) {
	d, _, err := inputs(op, vals, "packed")
	if err != nil {
		return nil, err
	}
	n := op.Shape.TotalSize()
	if op.Offset+n > len(d[0]) {
		return nil, fmt.Errorf("%v: input of %d elements is too short", op, len(d[0]))
	}
	out := make([]float32, n)
	copy(out, d[0][op.Offset:op.Offset+n])
	return dense(out, op.Shape...), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *SliceOp) String() string { return fmt.Sprintf("Slice{%d,%v}", op.Offset, op.Shape) }

// WriteHash writes String() into h.
func (op *SliceOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *SliceOp) Hashcode() uint32 { return hashCode(op.String()) }
