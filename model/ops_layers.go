package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// EmbeddingOp gathers token embeddings: out[b·T+t] = Table[ids[b,t]].
// Input ids int32 [B, T]; output [B·T, H]. Frozen: no gradient.
type EmbeddingOp struct {
	opBase
	Name          string  // checkpoint name of the table
	Table         *Frozen // [Vocab, Hidden], float32 or bf16
	Vocab, Hidden int
}

// Arity is the number of inputs.
func (op *EmbeddingOp) Arity() int { return 1 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *EmbeddingOp) Type() hm.Type { return hm.NewFnType(i32T(2), f32T(2)) }

// InferShape is [B·T, Hidden].
func (op *EmbeddingOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 1, in)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0].TotalSize(), op.Hidden}, nil
}

// Do computes EmbeddingForward.
func (op *EmbeddingOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", op, len(vals))
	}
	ids, _, _, err := batchSeq(op, "ids", vals[0])
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(ids)*op.Hidden) // [B·T, H]
	if err := op.Table.Rows(out, ids); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return dense(out, len(ids), op.Hidden), nil
}

// DiffWRT says which inputs get a gradient.
func (op *EmbeddingOp) DiffWRT(int) []bool { return []bool{false} }

// SymDiff builds the backward nodes.
func (op *EmbeddingOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, notDifferentiable(op)
}

// String names the op with its attributes; it is also what the op hashes.
func (op *EmbeddingOp) String() string { return "Embedding{" + op.Name + "}" }

// WriteHash writes String() into h.
func (op *EmbeddingOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *EmbeddingOp) Hashcode() uint32 { return hashCode(op.String()) }

// RMSNormOp is HF Qwen2RMSNorm in fp32: out = x·rsqrt(mean(x²)+Eps)·Weight per row.
// Input x [N, H]; output [N, H]. Backward: RMSNormGradOp(x, dy) → dx.
type RMSNormOp struct {
	opBase
	Name   string    // checkpoint name of the weight
	Weight []float32 // [H]
	Eps    float32
}

// Arity is the number of inputs.
func (op *RMSNormOp) Arity() int { return 1 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *RMSNormOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2)) }

// InferShape checks x is [N, len(Weight)].
func (op *RMSNormOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 1, in)
	if err != nil {
		return nil, err
	}
	if len(s[0]) != 2 || s[0][1] != len(op.Weight) {
		return nil, fmt.Errorf("%v: input %v, want [N, %d]", op, s[0], len(op.Weight))
	}
	return s[0].Clone(), nil
}

// Do computes RMSNormForward.
func (op *RMSNormOp) Do(vals ...G.Value) (G.Value, error) {
	d, s, err := inputs(op, vals, "x")
	if err != nil {
		return nil, err
	}
	cols := len(op.Weight)
	out := make([]float32, len(d[0])) // [N, H]
	RMSNormForward(out, d[0], op.Weight, len(d[0])/cols, cols, op.Eps)
	return dense(out, s[0]...), nil
}

// DiffWRT says which inputs get a gradient.
func (op *RMSNormOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff is dx = RMSNormGrad(x, dy).
func (op *RMSNormOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&RMSNormGradOp{Norm: op}, in[0], grad)
	return G.Nodes{dx}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *RMSNormOp) String() string { return fmt.Sprintf("RMSNorm{%s,%g}", op.Name, op.Eps) }

// WriteHash writes String() into h.
func (op *RMSNormOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *RMSNormOp) Hashcode() uint32 { return hashCode(op.String()) }

// RMSNormGradOp is the backward of RMSNormOp: inputs x, dy [N, H]; output dx [N, H] (RMSNormBackward).
type RMSNormGradOp struct {
	opBase
	Norm *RMSNormOp
}

// Arity is the number of inputs.
func (op *RMSNormGradOp) Arity() int { return 2 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *RMSNormGradOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2), f32T(2)) }

// InferShape is the output shape for the given input shapes.
func (op *RMSNormGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 2, in)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

// Do computes RMSNormBackward.
func (op *RMSNormGradOp) Do(vals ...G.Value) (G.Value, error) {
	d, s, err := inputs(op, vals, "x", "dy")
	if err != nil {
		return nil, err
	}
	if err := need(op, "dy", d[1], len(d[0])); err != nil {
		return nil, err
	}
	cols := len(op.Norm.Weight)
	dx := make([]float32, len(d[0])) // [N, H]
	RMSNormBackward(dx, d[0], op.Norm.Weight, d[1], len(d[0])/cols, cols, op.Norm.Eps)
	return dense(dx, s[0]...), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *RMSNormGradOp) String() string { return "RMSNormGrad{" + op.Norm.String() + "}" }

// WriteHash writes String() into h.
func (op *RMSNormGradOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *RMSNormGradOp) Hashcode() uint32 { return hashCode(op.String()) }

// RoPEOp applies rotary embeddings (RoPEForward; with Inverse, RoPEBackward, the rotation by −angle).
// Inputs x [N, Heads·HeadDim], positions int32 [B, T]; output [N, Heads·HeadDim].
// Its backward is the same op with Inverse flipped, applied to dy.
type RoPEOp struct {
	opBase
	Name           string // module path, e.g. model.layers.0.self_attn.q_rope
	Heads, HeadDim int
	Theta          float32
	Inverse        bool
}

// Arity is the number of inputs.
func (op *RoPEOp) Arity() int { return 2 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *RoPEOp) Type() hm.Type { return hm.NewFnType(f32T(2), i32T(2), f32T(2)) }

// InferShape is the output shape for the given input shapes.
func (op *RoPEOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 2, in)
	if err != nil {
		return nil, err
	}
	if len(s[0]) != 2 || s[0][1] != op.Heads*op.HeadDim || s[0][0] != s[1].TotalSize() {
		return nil, fmt.Errorf("%v: x %v and positions %v, want [N, %d] and N positions", op, s[0], s[1], op.Heads*op.HeadDim)
	}
	return s[0].Clone(), nil
}

// Do computes RoPEForward (or RoPEBackward when Inverse).
func (op *RoPEOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", op, len(vals))
	}
	d, s, err := inputs(op, vals[:1], "x")
	if err != nil {
		return nil, err
	}
	pos, _, err := i32Data(op, "positions", vals[1])
	if err != nil {
		return nil, err
	}
	if err := need(op, "x", d[0], len(pos)*op.Heads*op.HeadDim); err != nil {
		return nil, err
	}
	out := make([]float32, len(d[0])) // [N, Heads·D]
	if op.Inverse {
		RoPEBackward(out, d[0], pos, len(pos), op.Heads, op.HeadDim, op.Theta)
	} else {
		RoPEForward(out, d[0], pos, len(pos), op.Heads, op.HeadDim, op.Theta)
	}
	return dense(out, s[0]...), nil
}

// DiffWRT says which inputs get a gradient.
func (op *RoPEOp) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff is dx = RoPE_inverse(dy, positions).
func (op *RoPEOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	inv := *op
	inv.Inverse = !op.Inverse
	dx, err := G.ApplyOp(&inv, grad, in[1])
	return G.Nodes{dx, nil}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *RoPEOp) String() string {
	return fmt.Sprintf("RoPE{%s,%d,%d,%g,inv=%v}", op.Name, op.Heads, op.HeadDim, op.Theta, op.Inverse)
}

// WriteHash writes String() into h.
func (op *RoPEOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *RoPEOp) Hashcode() uint32 { return hashCode(op.String()) }

// SwiGLUOp is out = silu(gate)·up (SwiGLUForward). Inputs gate, up [N, I]; output [N, I].
// Backward: SwiGLUGradOp{WRT: 0 or 1}(gate, up, dy) → dgate or dup.
type SwiGLUOp struct {
	opBase
	Name string // module path, e.g. model.layers.0.mlp.act
}

// Arity is the number of inputs.
func (op *SwiGLUOp) Arity() int { return 2 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *SwiGLUOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2), f32T(2)) }

// InferShape is the output shape for the given input shapes.
func (op *SwiGLUOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 2, in)
	if err != nil {
		return nil, err
	}
	if !s[0].Eq(s[1]) {
		return nil, fmt.Errorf("%v: gate %v and up %v differ", op, s[0], s[1])
	}
	return s[0].Clone(), nil
}

// Do computes SwiGLUForward.
func (op *SwiGLUOp) Do(vals ...G.Value) (G.Value, error) {
	d, s, err := inputs(op, vals, "gate", "up")
	if err != nil {
		return nil, err
	}
	if err := need(op, "up", d[1], len(d[0])); err != nil {
		return nil, err
	}
	out := make([]float32, len(d[0])) // [N, I]
	SwiGLUForward(out, d[0], d[1])
	return dense(out, s[0]...), nil
}

// DiffWRT says which inputs get a gradient.
func (op *SwiGLUOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff is (SwiGLUGrad{0}(gate, up, dy), SwiGLUGrad{1}(gate, up, dy)).
func (op *SwiGLUOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dg, err := G.ApplyOp(&SwiGLUGradOp{Name: op.Name, WRT: 0}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	du, err := G.ApplyOp(&SwiGLUGradOp{Name: op.Name, WRT: 1}, in[0], in[1], grad)
	return G.Nodes{dg, du}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *SwiGLUOp) String() string { return "SwiGLU{" + op.Name + "}" }

// WriteHash writes String() into h.
func (op *SwiGLUOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *SwiGLUOp) Hashcode() uint32 { return hashCode(op.String()) }

// SwiGLUGradOp is the backward of SwiGLUOp (SwiGLUBackward): inputs gate, up, dy [N, I]; output dgate
// (WRT 0) or dup (WRT 1) [N, I].
type SwiGLUGradOp struct {
	opBase
	Name string
	WRT  int
}

// Arity is the number of inputs.
func (op *SwiGLUGradOp) Arity() int { return 3 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *SwiGLUGradOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2), f32T(2), f32T(2)) }

// InferShape is the output shape for the given input shapes.
func (op *SwiGLUGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 3, in)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

// Do computes SwiGLUBackward for one input.
func (op *SwiGLUGradOp) Do(vals ...G.Value) (G.Value, error) {
	d, s, err := inputs(op, vals, "gate", "up", "dy")
	if err != nil {
		return nil, err
	}
	for i, name := range []string{"up", "dy"} {
		if err := need(op, name, d[i+1], len(d[0])); err != nil {
			return nil, err
		}
	}
	out := make([]float32, len(d[0])) // [N, I]
	if op.WRT == 0 {
		SwiGLUBackward(out, nil, d[0], d[1], d[2])
	} else {
		SwiGLUBackward(nil, out, d[0], d[1], d[2])
	}
	return dense(out, s[0]...), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *SwiGLUGradOp) String() string { return fmt.Sprintf("SwiGLUGrad{%s,%d}", op.Name, op.WRT) }

// WriteHash writes String() into h.
func (op *SwiGLUGradOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *SwiGLUGradOp) Hashcode() uint32 { return hashCode(op.String()) }
