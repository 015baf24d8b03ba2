package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// AttentionOp is causal grouped-query attention with a key padding mask (AttentionForward).
// Inputs q [N, Heads·D], k [N, KVHeads·D], v [N, KVHeads·D], mask int32 [B, T] (1 token, 0 padding),
// N = B·T; output [N, Heads·D]; scale D^−0.5, softmax in fp32.
// Backward: AttentionGradOp(q, k, v, mask, dy) → packed [dq | dk | dv] (1-D), cut by three SliceOps.
type AttentionOp struct {
	opBase
	Name                    string // module path, e.g. model.layers.0.self_attn
	Heads, KVHeads, HeadDim int
}

func (op *AttentionOp) shape(batch, seq int) AttnShape {
	return NewAttnShape(batch, seq, op.Heads, op.KVHeads, op.HeadDim)
}

// Arity is the number of inputs.
func (op *AttentionOp) Arity() int { return 4 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *AttentionOp) Type() hm.Type {
	return hm.NewFnType(f32T(2), f32T(2), f32T(2), i32T(2), f32T(2))
}

// InferShape checks q, k, v against the mask's B·T and the head sizes; the output is q's shape.
func (op *AttentionOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 4, in)
	if err != nil {
		return nil, err
	}
	n := s[3].TotalSize()
	if !s[0].Eq(tensor.Shape{n, op.Heads * op.HeadDim}) || !s[1].Eq(tensor.Shape{n, op.KVHeads * op.HeadDim}) || !s[2].Eq(s[1]) {
		return nil, fmt.Errorf("%v: q %v, k %v, v %v, mask %v disagree", op, s[0], s[1], s[2], s[3])
	}
	return s[0].Clone(), nil
}

// attnInputs unpacks q, k, v, mask (and dy when withGrad).
func attnInputs(op fmt.Stringer, vals []G.Value, withGrad bool) (d [][]float32, mask []int32, batch, seq int, err error) {
	names := []string{"q", "k", "v"}
	want := 4
	if withGrad {
		want = 5
	}
	if len(vals) != want {
		return nil, nil, 0, 0, fmt.Errorf("%v: %d inputs, want %d", op, len(vals), want)
	}
	d, _, err = inputs(op, vals[:3], names...)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	mask, batch, seq, err = batchSeq(op, "mask", vals[3])
	if err != nil {
		return nil, nil, 0, 0, err
	}
	if withGrad {
		dy, _, err := f32Data(op, "dy", vals[4])
		if err != nil {
			return nil, nil, 0, 0, err
		}
		d = append(d, dy)
	}
	return d, mask, batch, seq, nil
}

// Do computes AttentionForward.
func (op *AttentionOp) Do(vals ...G.Value) (G.Value, error) {
	d, mask, batch, seq, err := attnInputs(op, vals, false)
	if err != nil {
		return nil, err
	}
	s := op.shape(batch, seq)
	n := batch * seq
	if err := checkQKV(op, d, n, s); err != nil {
		return nil, err
	}
	out := make([]float32, n*s.QWidth) // [N, Heads·D]
	AttentionForward(out, d[0], d[1], d[2], mask, s)
	return dense(out, n, s.QWidth), nil
}

func checkQKV(op fmt.Stringer, d [][]float32, n int, s AttnShape) error {
	for i, w := range []int{s.QWidth, s.KVWidth, s.KVWidth, s.QWidth} {
		if i >= len(d) {
			break
		}
		if err := need(op, []string{"q", "k", "v", "dy"}[i], d[i], n*w); err != nil {
			return err
		}
	}
	return nil
}

// DiffWRT says which inputs get a gradient.
func (op *AttentionOp) DiffWRT(int) []bool { return []bool{true, true, true, false} }

// SymDiff computes the packed gradient once and slices dq, dk, dv out of it.
func (op *AttentionOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	packed, err := G.ApplyOp(&AttentionGradOp{Attn: op}, in[0], in[1], in[2], in[3], grad)
	if err != nil {
		return nil, err
	}
	qs, ks := in[0].Shape().Clone(), in[1].Shape().Clone()
	dq, err := G.ApplyOp(&SliceOp{Offset: 0, Shape: qs}, packed)
	if err != nil {
		return nil, err
	}
	dk, err := G.ApplyOp(&SliceOp{Offset: qs.TotalSize(), Shape: ks}, packed)
	if err != nil {
		return nil, err
	}
	dv, err := G.ApplyOp(&SliceOp{Offset: qs.TotalSize() + ks.TotalSize(), Shape: ks.Clone()}, packed)
	return G.Nodes{dq, dk, dv, nil}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *AttentionOp) String() string {
	return fmt.Sprintf("Attention{%s,%d,%d,%d}", op.Name, op.Heads, op.KVHeads, op.HeadDim)
}

// WriteHash writes String() into h.
func (op *AttentionOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *AttentionOp) Hashcode() uint32 { return hashCode(op.String()) }

// AttentionGradOp is the backward of AttentionOp (AttentionBackward). Inputs q, k, v, mask, dy; output
// the 1-D concatenation dq [N·Heads·D] | dk [N·KVHeads·D] | dv [N·KVHeads·D].
type AttentionGradOp struct {
	opBase
	Attn *AttentionOp
}

// Arity is the number of inputs.
func (op *AttentionGradOp) Arity() int { return 5 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *AttentionGradOp) Type() hm.Type {
	return hm.NewFnType(f32T(2), f32T(2), f32T(2), i32T(2), f32T(2), f32T(1))
}

// InferShape is the output shape for the given input shapes.
func (op *AttentionGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 5, in)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0].TotalSize() + 2*s[1].TotalSize()}, nil
}

// Do computes AttentionBackward into the packed output.
func (op *AttentionGradOp) Do(vals ...G.Value) (G.Value, error) {
	d, mask, batch, seq, err := attnInputs(op, vals, true)
	if err != nil {
		return nil, err
	}
	s := op.Attn.shape(batch, seq)
	n := batch * seq
	if err := checkQKV(op, d, n, s); err != nil {
		return nil, err
	}
	nq, nkv := n*s.QWidth, n*s.KVWidth
	packed := make([]float32, nq+2*nkv) // [N·Heads·D + 2·N·KVHeads·D]
	AttentionBackward(packed[:nq], packed[nq:nq+nkv], packed[nq+nkv:], d[0], d[1], d[2], mask, d[3], s)
	return dense(packed, len(packed)), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *AttentionGradOp) String() string { return "AttentionGrad{" + op.Attn.String() + "}" }

// WriteHash writes String() into h.
func (op *AttentionGradOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *AttentionGradOp) Hashcode() uint32 { return hashCode(op.String()) }
