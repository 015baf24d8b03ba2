package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LMHeadOp is the untied lm_head without loss, for inference: logits = h·Wᵀ (LinearLoRAForward with no
// bias and no LoRA). Input h [N, H]; output fp32 logits [N, V]. Not differentiated.
type LMHeadOp struct {
	opBase
	Weight *Frozen // [V, H]
}

// Arity is the number of inputs.
func (op *LMHeadOp) Arity() int { return 1 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *LMHeadOp) Type() hm.Type { return hm.NewFnType(f32T(2), f32T(2)) }

// InferShape is the output shape for the given input shapes.
func (op *LMHeadOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 1, in)
	if err != nil {
		return nil, err
	}
	if len(s[0]) != 2 || s[0][1] != op.Weight.In {
		return nil, fmt.Errorf("%v: h %v, want [N, %d]", op, s[0], op.Weight.In)
	}
	return tensor.Shape{s[0][0], op.Weight.Out}, nil
}

// Do computes the logits.
func (op *LMHeadOp) Do(vals ...G.Value) (G.Value, error) {
	d, _, err := inputs(op, vals, "h")
	if err != nil {
		return nil, err
	}
	w, err := op.Weight.Dense()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	rows := len(d[0]) / op.Weight.In
	logits := make([]float32, rows*op.Weight.Out) // [N, V]
	LinearLoRAForward(logits, d[0], w, nil, nil, nil, LinearShape{Rows: rows, In: op.Weight.In, Out: op.Weight.Out})
	return dense(logits, rows, op.Weight.Out), nil
}

// DiffWRT says which inputs get a gradient.
func (op *LMHeadOp) DiffWRT(int) []bool { return []bool{false} }

// SymDiff builds the backward nodes.
func (op *LMHeadOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, notDifferentiable(op)
}

// String names the op with its attributes; it is also what the op hashes.
func (op *LMHeadOp) String() string { return "LMHead{" + op.Weight.Name + "}" }

// WriteHash writes String() into h.
func (op *LMHeadOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *LMHeadOp) Hashcode() uint32 { return hashCode(op.String()) }

// LMHeadCrossEntropyOp is lm_head fused with the completion-only causal LM loss
// (LMHeadCrossEntropyForward): loss = Σ_{rows with label} (logsumexp(W·h) − (W·h)[label]) / numItems with
// labels shifted by one and −100 ignored. Inputs h [N, H], labels int32 [B, T] (unshifted, HF layout),
// numItems f32 scalar (completion tokens in the whole effective batch); output an f32 scalar.
// The GPU may process rows in chunks so full logits never exist. Backward: LMHeadCrossEntropyGradOp.
type LMHeadCrossEntropyOp struct {
	opBase
	Weight *Frozen // [V, H]
}

func (op *LMHeadCrossEntropyOp) ceShape(batch, seq int) CEShape {
	return CEShape{Batch: batch, Seq: seq, Hidden: op.Weight.In, Vocab: op.Weight.Out, IgnoreIndex: -100}
}

// Arity is the number of inputs.
func (op *LMHeadCrossEntropyOp) Arity() int { return 3 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *LMHeadCrossEntropyOp) Type() hm.Type {
	return hm.NewFnType(f32T(2), i32T(2), G.Float32, G.Float32)
}

// InferShape is the output shape for the given input shapes.
func (op *LMHeadCrossEntropyOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 3, in)
	if err != nil {
		return nil, err
	}
	if !s[0].Eq(tensor.Shape{s[1].TotalSize(), op.Weight.In}) {
		return nil, fmt.Errorf("%v: h %v and labels %v, want [B·T, %d]", op, s[0], s[1], op.Weight.In)
	}
	return tensor.ScalarShape(), nil
}

// ceInputs unpacks h, labels, numItems and, when withGrad, dloss.
func (op *LMHeadCrossEntropyOp) ceInputs(caller fmt.Stringer, vals []G.Value, withGrad bool) (h []float32, labels []int32, numItems, dloss float32, s CEShape, err error) {
	want := 3
	if withGrad {
		want = 4
	}
	if len(vals) != want {
		err = fmt.Errorf("%v: %d inputs, want %d", caller, len(vals), want)
		return
	}
	if h, _, err = f32Data(caller, "h", vals[0]); err != nil {
		return
	}
	var batch, seq int
	if labels, batch, seq, err = batchSeq(caller, "labels", vals[1]); err != nil {
		return
	}
	s = op.ceShape(batch, seq)
	if err = need(caller, "h", h, batch*seq*s.Hidden); err != nil {
		return
	}
	var d []float32
	if d, _, err = f32Data(caller, "numItems", vals[2]); err != nil {
		return
	}
	if len(d) != 1 || !(d[0] > 0) {
		err = fmt.Errorf("%v: numItems %v must be one number > 0 (no completion token in the batch?)", caller, d)
		return
	}
	numItems = d[0]
	if withGrad {
		if d, _, err = f32Data(caller, "dloss", vals[3]); err != nil {
			return
		}
		if len(d) != 1 {
			err = fmt.Errorf("%v: dloss has %d elements, want 1", caller, len(d))
			return
		}
		dloss = d[0]
	}
	return
}

// Do computes the loss.
func (op *LMHeadCrossEntropyOp) Do(vals ...G.Value) (G.Value, error) {
	h, labels, numItems, _, s, err := op.ceInputs(op, vals, false)
	if err != nil {
		return nil, err
	}
	w, err := op.Weight.Dense()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	loss, err := LMHeadCrossEntropyForward(h, w, labels, numItems, s)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return G.NewF32(loss), nil
}

// DiffWRT says which inputs get a gradient.
func (op *LMHeadCrossEntropyOp) DiffWRT(int) []bool { return []bool{true, false, false} }

// SymDiff is dh = LMHeadCrossEntropyGrad(h, labels, numItems, dloss).
func (op *LMHeadCrossEntropyOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dh, err := G.ApplyOp(&LMHeadCrossEntropyGradOp{CE: op}, in[0], in[1], in[2], grad)
	return G.Nodes{dh, nil, nil}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *LMHeadCrossEntropyOp) String() string { return "LMHeadCrossEntropy{" + op.Weight.Name + "}" }

// WriteHash writes String() into h.
func (op *LMHeadCrossEntropyOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *LMHeadCrossEntropyOp) Hashcode() uint32 { return hashCode(op.String()) }

// LMHeadCrossEntropyGradOp is dh of LMHeadCrossEntropyOp (LMHeadCrossEntropyBackward):
// dh_n = dloss/numItems · Σ_v (softmax_v − [v = label_n]) W_v, zero for ignored rows.
// Inputs h [N, H], labels int32 [B, T], numItems scalar, dloss scalar; output [N, H].
type LMHeadCrossEntropyGradOp struct {
	opBase
	CE *LMHeadCrossEntropyOp
}

// Arity is the number of inputs.
func (op *LMHeadCrossEntropyGradOp) Arity() int { return 4 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *LMHeadCrossEntropyGradOp) Type() hm.Type {
	return hm.NewFnType(f32T(2), i32T(2), G.Float32, G.Float32, f32T(2))
}

// InferShape is the output shape for the given input shapes.
func (op *LMHeadCrossEntropyGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 4, in)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

// Do computes dh.
func (op *LMHeadCrossEntropyGradOp) Do(vals ...G.Value) (G.Value, error) {
	h, labels, numItems, dloss, s, err := op.CE.ceInputs(op, vals, true)
	if err != nil {
		return nil, err
	}
	w, err := op.CE.Weight.Dense()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	dh := make([]float32, len(h)) // [N, H]
	if err := LMHeadCrossEntropyBackward(dh, h, w, labels, numItems, dloss, s); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return dense(dh, s.Batch*s.Seq, s.Hidden), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *LMHeadCrossEntropyGradOp) String() string {
	return "LMHeadCrossEntropyGrad{" + op.CE.Weight.Name + "}"
}

// WriteHash writes String() into h.
func (op *LMHeadCrossEntropyGradOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *LMHeadCrossEntropyGradOp) Hashcode() uint32 { return hashCode(op.String()) }
