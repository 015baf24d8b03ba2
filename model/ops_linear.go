package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/t2m/t2m/internal/bf16"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Quantized is a frozen weight stored quantized (quant.Weight: NF4 with double quantization, bitsandbytes
// layout); the CPU dequantizes rows on use, the GPU uploads the blocks.
type Quantized interface {
	// DequantizeRows writes rows [r0, r1) of the [Out, In] matrix into dst [(r1−r0)·In].
	DequantizeRows(r0, r1 int, dst []float32) error
}

// Frozen is a frozen weight matrix [Out, In]: float32, or quantized.
type Frozen struct {
	Name    string    // checkpoint tensor name, e.g. model.layers.0.self_attn.q_proj.weight
	Out, In int       // shape
	F32     []float32 // [Out, In], or nil: exactly one of F32, BF16 and Quant is set
	BF16    []uint16  // [Out, In] bfloat16 bits, as a bf16 checkpoint stores the embedding and lm_head (LoadOptions.BF16Tables)
	Quant   Quantized // NF4 blocks

	evict func() error // drops BF16's pages when it views a checkpoint's mapping (Evict)
}

// Evict tells the system that the memory of a table viewed in the checkpoint's mapping (BF16, loaded with
// LoadOptions.BF16Tables) need not stay resident, typically right after it was uploaded to a GPU: its pages
// leave the process's resident set and are read again from the file (the page cache) if the table is used
// later. The values do not change. Nothing happens for data the Frozen holds in its own memory.
func (f *Frozen) Evict() error {
	if f == nil || f.evict == nil {
		return nil
	}
	return f.evict()
}

// Dense returns the float32 matrix [Out, In]: F32 itself, or bf16 widened (exactly) or NF4 dequantized into
// a new slice.
func (f *Frozen) Dense() ([]float32, error) {
	if f.F32 != nil {
		return f.F32, nil
	}
	if f.BF16 != nil {
		w := make([]float32, len(f.BF16)) // [Out, In]
		bf16.Widen(w, f.BF16)
		return w, nil
	}
	if f.Quant == nil {
		return nil, fmt.Errorf("weight %s has no data", f.Name)
	}
	w := make([]float32, f.Out*f.In) // [Out, In]
	if err := f.Quant.DequantizeRows(0, f.Out, w); err != nil {
		return nil, fmt.Errorf("dequantizing %s: %w", f.Name, err)
	}
	return w, nil
}

// Rows copies the rows ids of the table [Out, In] (an embedding) into out [len(ids), In], widening bf16
// storage; an id outside [0, Out) is an error naming it.
func (f *Frozen) Rows(out []float32, ids []int32) error {
	switch {
	case f.F32 != nil:
		return EmbeddingForward(out, f.F32, ids, f.Out, f.In)
	case f.BF16 != nil:
		if err := checkIDs(ids, f.Out); err != nil {
			return err
		}
		for n, id := range ids {
			bf16.Widen(out[n*f.In:(n+1)*f.In], f.BF16[int(id)*f.In:(int(id)+1)*f.In])
		}
		return nil
	}
	return fmt.Errorf("table %s has no float32 or bf16 data", f.Name)
}

// LinearOp is a frozen linear layer with an optional LoRA branch (LinearLoRAForward):
// y = x·Wᵀ + Bias + Scaling·(x·Aᵀ)·Bᵀ. Inputs x [N, In], and when Rank > 0 the trainable A [Rank, In] and
// B [Out, Rank]; output [N, Out]. W (float32 or NF4) and Bias belong to the op.
// With Split (LoRA dropout in training) a fourth input xl = dropout(x) [N, In] feeds the LoRA branch
// (LinearLoRAForwardSplit): y = x·Wᵀ + Bias + Scaling·(xl·Aᵀ)·Bᵀ.
// Backward: LinearGradInputOp → dx; LoRAGradOp{WRT 'A'|'B'}(xl, dy, A, B) → dA, dB (xl = x unless Split);
// with Split also LoRAGradOp{WRT 'X'} → dxl.
type LinearOp struct {
	opBase
	Name    string    // module path, e.g. model.layers.0.self_attn.q_proj
	Weight  *Frozen   // [Out, In]
	Bias    []float32 // [Out] or nil
	Rank    int       // LoRA rank; 0: no LoRA inputs
	Scaling float32   // LoRA scaling
	Split   bool      // the LoRA branch reads a fourth input (dropout(x)) instead of x
}

func (op *LinearOp) shape(rows int) LinearShape {
	return LinearShape{Rows: rows, In: op.Weight.In, Out: op.Weight.Out, Rank: op.Rank, Scaling: op.Scaling}
}

// Arity is 1 without LoRA, 3 with, 4 with a split LoRA input.
func (op *LinearOp) Arity() int {
	switch {
	case op.Rank > 0 && op.Split:
		return 4
	case op.Rank > 0:
		return 3
	}
	return 1
}

// Type is Arity float32 matrices → a float32 matrix.
func (op *LinearOp) Type() hm.Type { return matrixFn(op.Arity()) }

// matrixFn is the type of an op from n float32 matrices to a float32 matrix.
func matrixFn(n int) hm.Type {
	ts := make([]hm.Type, n+1)
	for i := range ts {
		ts[i] = f32T(2)
	}
	return hm.NewFnType(ts...)
}

// InferShape checks x [N, In], A [Rank, In], B [Out, Rank]; the output is [N, Out].
func (op *LinearOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, op.Arity(), in)
	if err != nil {
		return nil, err
	}
	if len(s[0]) != 2 || s[0][1] != op.Weight.In {
		return nil, fmt.Errorf("%v: x %v, want [N, %d]", op, s[0], op.Weight.In)
	}
	if op.Rank > 0 && (!s[1].Eq(tensor.Shape{op.Rank, op.Weight.In}) || !s[2].Eq(tensor.Shape{op.Weight.Out, op.Rank})) {
		return nil, fmt.Errorf("%v: lora_A %v and lora_B %v, want [%d %d] and [%d %d]", op, s[1], s[2],
			op.Rank, op.Weight.In, op.Weight.Out, op.Rank)
	}
	if op.Split && !s[3].Eq(s[0]) {
		return nil, fmt.Errorf("%v: LoRA input %v differs from x %v", op, s[3], s[0])
	}
	return tensor.Shape{s[0][0], op.Weight.Out}, nil
}

// loraInputs unpacks the named inputs and A, B (nil when Rank is 0).
func (op *LinearOp) loraInputs(caller fmt.Stringer, vals []G.Value, names ...string) ([][]float32, error) {
	if op.Rank > 0 {
		names = append(names, "lora_A", "lora_B")
	}
	d, _, err := inputs(caller, vals, names...)
	if err != nil {
		return nil, err
	}
	if op.Rank == 0 {
		d = append(d, nil, nil)
	} else {
		if err := need(caller, "lora_A", d[len(d)-2], op.Rank*op.Weight.In); err != nil {
			return nil, err
		}
		if err := need(caller, "lora_B", d[len(d)-1], op.Weight.Out*op.Rank); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Do computes LinearLoRAForward (LinearLoRAForwardSplit with Split).
func (op *LinearOp) Do(vals ...G.Value) (G.Value, error) {
	xl := []float32(nil)
	if op.Split {
		if len(vals) != 4 {
			return nil, fmt.Errorf("%v: %d inputs, want 4", op, len(vals))
		}
		var err error
		if xl, _, err = f32Data(op, "lora_input", vals[3]); err != nil {
			return nil, err
		}
		vals = vals[:3]
	}
	d, err := op.loraInputs(op, vals, "x")
	if err != nil {
		return nil, err
	}
	if xl == nil {
		xl = d[0]
	} else if err := need(op, "lora_input", xl, len(d[0])); err != nil {
		return nil, err
	}
	w, err := op.Weight.Dense()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	rows := len(d[0]) / op.Weight.In
	y := make([]float32, rows*op.Weight.Out) // [N, Out]
	LinearLoRAForwardSplit(y, d[0], xl, w, op.Bias, d[1], d[2], op.shape(rows))
	return dense(y, rows, op.Weight.Out), nil
}

// DiffWRT: x, and A, B when present.
func (op *LinearOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

// SymDiff builds dx, dA, dB (and dxl with Split).
func (op *LinearOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	gin := G.Nodes{grad}
	if op.Rank > 0 && !op.Split {
		gin = append(gin, in[1], in[2])
	}
	dx, err := G.ApplyOp(&LinearGradInputOp{Lin: op}, gin...)
	if err != nil || op.Rank == 0 {
		return G.Nodes{dx}, err
	}
	xl := in[0]
	if op.Split {
		xl = in[3]
	}
	dA, err := G.ApplyOp(&LoRAGradOp{Lin: op, WRT: 'A'}, xl, grad, in[1], in[2])
	if err != nil {
		return nil, err
	}
	dB, err := G.ApplyOp(&LoRAGradOp{Lin: op, WRT: 'B'}, xl, grad, in[1], in[2])
	if err != nil || !op.Split {
		return G.Nodes{dx, dA, dB}, err
	}
	dxl, err := G.ApplyOp(&LoRAGradOp{Lin: op, WRT: 'X'}, xl, grad, in[1], in[2])
	return G.Nodes{dx, dA, dB, dxl}, err
}

// String names the op with its attributes; it is also what the op hashes.
func (op *LinearOp) String() string {
	return fmt.Sprintf("Linear{%s,%dx%d,r=%d,s=%g,split=%v}", op.Name, op.Weight.Out, op.Weight.In, op.Rank, op.Scaling, op.Split)
}

// WriteHash writes String() into h.
func (op *LinearOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *LinearOp) Hashcode() uint32 { return hashCode(op.String()) }

// LinearGradInputOp is dx of LinearOp (LinearLoRABackward with dA = dB = nil):
// dx = dy·W + Scaling·(dy·B)·A. Inputs dy [N, Out] (+ A, B); output [N, In].
// Without LoRA or with Split it takes dy alone and computes the base path dx = dy·W.
type LinearGradInputOp struct {
	opBase
	Lin *LinearOp
}

// Arity is 3 when the LoRA term is merged into dx, else 1.
func (op *LinearGradInputOp) Arity() int {
	if op.Lin.Rank > 0 && !op.Lin.Split {
		return 3
	}
	return 1
}

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *LinearGradInputOp) Type() hm.Type { return matrixFn(op.Arity()) }

// InferShape is the output shape for the given input shapes.
func (op *LinearGradInputOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, op.Arity(), in)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0][0], op.Lin.Weight.In}, nil
}

// Do computes dx.
func (op *LinearGradInputOp) Do(vals ...G.Value) (G.Value, error) {
	w, err := op.Lin.Weight.Dense()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	if op.Arity() == 1 {
		d, _, err := inputs(op, vals, "dy")
		if err != nil {
			return nil, err
		}
		rows := len(d[0]) / op.Lin.Weight.Out
		dx := make([]float32, rows*op.Lin.Weight.In) // [N, In]
		LinearLoRABackwardSplit(dx, nil, nil, nil, nil, d[0], w, nil, nil, LinearShape{Rows: rows, In: op.Lin.Weight.In, Out: op.Lin.Weight.Out})
		return dense(dx, rows, op.Lin.Weight.In), nil
	}
	d, err := op.Lin.loraInputs(op, vals, "dy")
	if err != nil {
		return nil, err
	}
	rows := len(d[0]) / op.Lin.Weight.Out
	dx := make([]float32, rows*op.Lin.Weight.In) // [N, In]
	LinearLoRABackward(dx, nil, nil, nil, d[0], w, d[1], d[2], op.Lin.shape(rows))
	return dense(dx, rows, op.Lin.Weight.In), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *LinearGradInputOp) String() string { return "LinearGradInput{" + op.Lin.String() + "}" }

// WriteHash writes String() into h.
func (op *LinearGradInputOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *LinearGradInputOp) Hashcode() uint32 { return hashCode(op.String()) }

// LoRAGradOp is dA (WRT 'A'), dB (WRT 'B') or the LoRA-input gradient dxl (WRT 'X', Split only) of
// LinearOp (LinearLoRABackwardSplit): dA = Scaling·(dy·B)ᵀ·xl [Rank, In], dB = Scaling·dyᵀ·(xl·Aᵀ)
// [Out, Rank], dxl = Scaling·(dy·B)·A [N, In]. Inputs xl [N, In] (the LoRA input: x, or dropout(x) with
// Split), dy [N, Out], A [Rank, In], B [Out, Rank].
type LoRAGradOp struct {
	opBase
	Lin *LinearOp
	WRT byte // 'A', 'B' or 'X'
}

// Arity is the number of inputs.
func (op *LoRAGradOp) Arity() int { return 4 }

// Type is the op's gorgonia type: its inputs' tensor types → its output type.
func (op *LoRAGradOp) Type() hm.Type {
	return hm.NewFnType(f32T(2), f32T(2), f32T(2), f32T(2), f32T(2))
}

// InferShape is the output shape for the given input shapes.
func (op *LoRAGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(op, 4, in)
	if err != nil {
		return nil, err
	}
	switch op.WRT {
	case 'A':
		return s[2].Clone(), nil
	case 'X':
		return s[0].Clone(), nil
	}
	return s[3].Clone(), nil
}

// Do computes dA or dB.
func (op *LoRAGradOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 4 {
		return nil, fmt.Errorf("%v: %d inputs, want 4", op, len(vals))
	}
	d, err := op.Lin.loraInputs(op, vals, "x", "dy")
	if err != nil {
		return nil, err
	}
	rows := len(d[0]) / op.Lin.Weight.In
	s := op.Lin.shape(rows)
	if err := need(op, "dy", d[1], rows*s.Out); err != nil {
		return nil, err
	}
	switch op.WRT {
	case 'A':
		dA := make([]float32, s.Rank*s.In) // [Rank, In]
		LinearLoRABackwardSplit(nil, nil, dA, nil, d[0], d[1], nil, d[2], d[3], s)
		return dense(dA, s.Rank, s.In), nil
	case 'X':
		dxl := make([]float32, rows*s.In) // [N, In]
		LinearLoRABackwardSplit(nil, dxl, nil, nil, d[0], d[1], nil, d[2], d[3], s)
		return dense(dxl, rows, s.In), nil
	}
	dB := make([]float32, s.Out*s.Rank) // [Out, Rank]
	LinearLoRABackwardSplit(nil, nil, nil, dB, d[0], d[1], nil, d[2], d[3], s)
	return dense(dB, s.Out, s.Rank), nil
}

// String names the op with its attributes; it is also what the op hashes.
func (op *LoRAGradOp) String() string { return fmt.Sprintf("LoRAGrad%c{%v}", op.WRT, op.Lin) }

// WriteHash writes String() into h.
func (op *LoRAGradOp) WriteHash(h hash.Hash) { hashString(h, op.String()) }

// Hashcode is the FNV-1a hash of String().
func (op *LoRAGradOp) Hashcode() uint32 { return hashCode(op.String()) }
