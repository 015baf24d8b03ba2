package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LoRAParams holds an adapter's matrices by module path (e.g. model.layers.0.self_attn.q_proj).
// A graph's A and B input values share these slices: updating them in place (an optimizer step) changes
// the next Run's inputs without rebinding.
type LoRAParams struct {
	Rank    int
	Scaling float32              // alpha/r (or alpha/√r with rsLoRA)
	Dropout float32              // LoRA input dropout applied by the graph: set it for training graphs only
	A       map[string][]float32 // [Rank, In] per module
	B       map[string][]float32 // [Out, Rank] per module
}

// LoRANode is one adapted module's differentiable inputs and, after BuildGrad, their gradients.
type LoRANode struct {
	Module       string
	A, B         *G.Node // [Rank, In], [Out, Rank]
	GradA, GradB *G.Node // same shapes
}

// Mode says what a graph ends with.
type Mode int

const (
	// ModeLogits ends with lm_head: Graph.Logits [N, V].
	ModeLogits Mode = iota
	// ModeLoss ends with the fused lm_head + completion-only cross-entropy: Graph.Loss, a scalar.
	ModeLoss
	// ModeLossHeadRows is ModeLoss with the last layer's o projection, MLP and the final norm run only on
	// the rows the loss reads: after the last layer's attention its output and the residual are gathered
	// (GatherRowsOp by Graph.HeadIndex, HeadRows' layout) and the loss reads Graph.HeadLabels. Loss and
	// gradients are ModeLoss's; LoRA dropout's masks in those gathered tensors are drawn over the gathered
	// layout, so they differ from ModeLoss's there.
	ModeLossHeadRows
)

// Graph is the Qwen2 forward pass for one (batch, length) shape as a gorgonia ExprGraph.
type Graph struct {
	G          *G.ExprGraph
	Weights    *Weights
	Batch, Seq int
	IDs        *G.Node       // int32 [B, T]
	Positions  *G.Node       // int32 [B, T]
	Mask       *G.Node       // int32 [B, T], 1 token, 0 padding
	Labels     *G.Node       // int32 [B, T], −100 ignored (ModeLoss, ModeLossHeadRows)
	NumItems   *G.Node       // f32 scalar: completion tokens in the effective batch (ModeLoss, ModeLossHeadRows)
	HeadIndex  *G.Node       // int32 [B, T]: HeadRows' index, the source row of each gathered row (ModeLossHeadRows)
	HeadLabels *G.Node       // int32 [B, T]: HeadRows' labels of the gathered rows, what the loss reads (ModeLossHeadRows)
	LoRA       []LoRANode    // adapted modules in graph order
	Hidden     []*G.Node     // [N, H]: embeddings, each layer's output, then the final norm (last two gathered)
	Logits     *G.Node       // [N, V] (ModeLogits)
	Loss       *G.Node       // scalar (ModeLoss)
	Dropout    *DropoutState // shared by the DropoutOps (LoRAParams.Dropout > 0); SetStep changes the masks
	machine    G.VM
}

// SetStep seeds the dropout masks of the next Run (a no-op without dropout).
func (g *Graph) SetStep(step uint64) { g.Dropout.Step = step }

// builder is the graph executor of the model definition (Ops[*G.Node]): each op adds its node.
type builder struct {
	g    *Graph
	lora *LoRAParams
	mode Mode
}

// Embed is the embedding lookup of the graph's input ids.
func (b *builder) Embed(name string, table *Frozen) (*G.Node, error) {
	c := b.g.Weights.Config
	return G.ApplyOp(&EmbeddingOp{Name: name, Table: table, Vocab: c.VocabSize, Hidden: c.HiddenSize}, b.g.IDs) // [N, H]
}

// RMSNorm adds an RMSNormOp.
func (b *builder) RMSNorm(name string, weight []float32, x *G.Node, eps float32) (*G.Node, error) {
	return G.ApplyOp(&RMSNormOp{Name: name, Weight: weight, Eps: eps}, x) // [N, H]
}

// RoPE adds a RoPEOp at the graph's positions.
func (b *builder) RoPE(name string, x *G.Node, heads, headDim int, theta float32) (*G.Node, error) {
	return G.ApplyOp(&RoPEOp{Name: name, Heads: heads, HeadDim: headDim, Theta: theta}, x, b.g.Positions) // [N, heads·D]
}

// Attention adds a causal GQA AttentionOp under the graph's padding mask.
func (b *builder) Attention(name string, _ int, q, k, v *G.Node) (*G.Node, error) {
	c := b.g.Weights.Config
	return G.ApplyOp(&AttentionOp{Name: name, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim}, q, k, v, b.g.Mask) // [N, Hq·D]
}

// Add adds an AddOp.
func (b *builder) Add(name string, x, y *G.Node) (*G.Node, error) {
	return G.ApplyOp(&AddOp{Name: name}, x, y) // [N, H]
}

// SwiGLU adds a SwiGLUOp.
func (b *builder) SwiGLU(name string, gate, up *G.Node) (*G.Node, error) {
	return G.ApplyOp(&SwiGLUOp{Name: name}, gate, up) // [N, I]
}

// HeadRows gathers x's rows by Graph.HeadIndex in ModeLossHeadRows (x [N, C] → [B·T, C] in HeadRows'
// layout, zero rows past the targets); in the other modes the head reads every row and x is returned.
func (b *builder) HeadRows(name string, x *G.Node) (*G.Node, error) {
	if b.mode != ModeLossHeadRows {
		return x, nil
	}
	g := b.g
	if g.HeadIndex == nil {
		g.HeadIndex = G.NewMatrix(g.G, G.Int32, G.WithShape(g.Batch, g.Seq), G.WithName("head_index")) // [B, T]
	}
	return G.ApplyOp(&GatherRowsOp{Name: name}, x, g.HeadIndex) // [B·T, C]
}

// Hidden records a hidden state in Graph.Hidden.
func (b *builder) Hidden(x *G.Node) { b.g.Hidden = append(b.g.Hidden, x) }

// LMHead ends the graph as its mode says: logits [N, V] or the fused lm_head + cross-entropy loss.
func (b *builder) LMHead(w *Frozen, x *G.Node) (*G.Node, error) {
	g := b.g
	var err error
	switch b.mode {
	case ModeLogits:
		g.Logits, err = G.ApplyOp(&LMHeadOp{Weight: w}, x) // [N, V]
		return g.Logits, err
	case ModeLoss, ModeLossHeadRows:
		g.Labels = G.NewMatrix(g.G, G.Int32, G.WithShape(g.Batch, g.Seq), G.WithName("labels")) // [B, T]
		g.NumItems = G.NewScalar(g.G, G.Float32, G.WithName("num_items_in_batch"))
		labels := g.Labels
		if b.mode == ModeLossHeadRows { // x holds the gathered rows: the loss reads their labels
			if g.HeadIndex == nil {
				return nil, fmt.Errorf("head rows mode: the model gathered no rows before the head")
			}
			g.HeadLabels = G.NewMatrix(g.G, G.Int32, G.WithShape(g.Batch, g.Seq), G.WithName("head_labels")) // [B, T]
			labels = g.HeadLabels
		}
		g.Loss, err = G.ApplyOp(&LMHeadCrossEntropyOp{Weight: w}, x, labels, g.NumItems) // scalar
		return g.Loss, err
	}
	return nil, fmt.Errorf("unknown graph mode %d", b.mode)
}

// Linear applies a projection, with its LoRA branch when the adapter has one for that module.
func (b *builder) Linear(p *Projection, x *G.Node) (*G.Node, error) {
	op := &LinearOp{Name: p.Module, Weight: p.W, Bias: p.Bias}
	if b.lora != nil {
		a, okA := b.lora.A[p.Module]
		bm, okB := b.lora.B[p.Module]
		if okA != okB {
			return nil, fmt.Errorf("adapter for %s has only one of lora_A and lora_B", p.Module)
		}
		if okA {
			r := b.lora.Rank
			if len(a) != r*p.W.In || len(bm) != p.W.Out*r {
				return nil, fmt.Errorf("adapter for %s: lora_A has %d values and lora_B %d, want [%d %d] and [%d %d]",
					p.Module, len(a), len(bm), r, p.W.In, p.W.Out, r)
			}
			op.Rank, op.Scaling = r, b.lora.Scaling
			an := G.NewMatrix(b.g.G, G.Float32, G.WithShape(r, p.W.In), G.WithName(p.Module+".lora_A"),
				G.WithValue(dense(a, r, p.W.In))) // [r, in]
			bn := G.NewMatrix(b.g.G, G.Float32, G.WithShape(p.W.Out, r), G.WithName(p.Module+".lora_B"),
				G.WithValue(dense(bm, p.W.Out, r))) // [out, r]
			b.g.LoRA = append(b.g.LoRA, LoRANode{Module: p.Module, A: an, B: bn})
			if b.lora.Dropout > 0 {
				xl, err := G.ApplyOp(&DropoutOp{Name: p.Module + ".lora_dropout", P: b.lora.Dropout, State: b.g.Dropout}, x) // [N, in]
				if err != nil {
					return nil, err
				}
				op.Split = true
				return G.ApplyOp(op, x, an, bn, xl) // [N, out]
			}
			return G.ApplyOp(op, x, an, bn) // [N, out]
		}
	}
	return G.ApplyOp(op, x) // [N, out]
}

// Build makes the Qwen2 graph for batches of shape [batch, seq]. lora may be nil (base model).
// Gorgonia panics inside graph construction come back as errors.
func Build(w *Weights, lora *LoRAParams, batch, seq int, mode Mode) (g *Graph, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("building the Qwen2 graph: %v", r)
		}
	}()
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("building the Qwen2 graph: batch %d and length %d must be > 0", batch, seq)
	}
	eg := G.NewGraph()
	g = &Graph{G: eg, Weights: w, Batch: batch, Seq: seq, Dropout: &DropoutState{}}
	i32 := func(name string) *G.Node {
		return G.NewMatrix(eg, G.Int32, G.WithShape(batch, seq), G.WithName(name)) // [B, T]
	}
	g.IDs, g.Positions, g.Mask = i32("input_ids"), i32("position_ids"), i32("attention_mask")
	if lora != nil {
		if err := checkAdapterModules(w, lora); err != nil {
			return nil, err
		}
	}
	if _, err := Forward[*G.Node](&builder{g: g, lora: lora, mode: mode}, w); err != nil {
		return nil, err
	}
	return g, nil
}

// BuildGrad adds d Loss / d (every LoRA A and B) to a ModeLoss or ModeLossHeadRows graph with gorgonia.Grad.
func (g *Graph) BuildGrad() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("differentiating the Qwen2 graph: %v", r)
		}
	}()
	if g.Loss == nil {
		return fmt.Errorf("differentiating the Qwen2 graph: it has no loss (built in logits mode)")
	}
	if len(g.LoRA) == 0 {
		return fmt.Errorf("differentiating the Qwen2 graph: it has no LoRA parameters")
	}
	var wrt G.Nodes
	for _, l := range g.LoRA {
		wrt = append(wrt, l.A, l.B)
	}
	grads, err := G.Grad(g.Loss, wrt...)
	if err != nil {
		return fmt.Errorf("differentiating the Qwen2 graph: %w", err)
	}
	for i := range g.LoRA {
		g.LoRA[i].GradA, g.LoRA[i].GradB = grads[2*i], grads[2*i+1]
	}
	return nil
}

// Batch is one micro-batch's inputs, each [B·T] row-major.
type Batch struct {
	IDs       []int32
	Mask      []int32 // nil: all ones
	Positions []int32 // nil: arange(T) per row, what HF forward uses without position_ids
	Labels    []int32 // loss modes only
	NumItems  float32 // loss modes only; ≤ 0: this micro-batch's own count of completion tokens
}

// Run binds the batch and executes the graph on the CPU (gorgonia's TapeMachine).
func (g *Graph) Run(b Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("running the Qwen2 graph: %v", r)
		}
	}()
	n := g.Batch * g.Seq
	if len(b.IDs) != n {
		return fmt.Errorf("batch has %d token ids, the graph takes %d×%d", len(b.IDs), g.Batch, g.Seq)
	}
	mask, pos := b.Mask, b.Positions
	if mask == nil {
		mask = make([]int32, n)
		for i := range mask {
			mask[i] = 1
		}
	}
	if pos == nil {
		pos = PositionsArange(g.Batch, g.Seq)
	}
	if len(mask) != n || len(pos) != n {
		return fmt.Errorf("batch has %d mask values and %d positions, want %d", len(mask), len(pos), n)
	}
	for i := range n {
		if mask[i] < 0 {
			return fmt.Errorf("attention mask value %d at row %d, position %d: want 0 (padding), 1 (a token) or the number of a packed sequence", mask[i], i/g.Seq, i%g.Seq)
		}
		if pos[i] < 0 {
			return fmt.Errorf("position id %d at row %d, position %d is negative", pos[i], i/g.Seq, i%g.Seq)
		}
	}
	bind := func(node *G.Node, v []int32) error {
		return G.Let(node, tensor.New(tensor.WithShape(g.Batch, g.Seq), tensor.WithBacking(v)))
	}
	if err := bind(g.IDs, b.IDs); err != nil {
		return err
	}
	if err := bind(g.Mask, mask); err != nil {
		return err
	}
	if err := bind(g.Positions, pos); err != nil {
		return err
	}
	if g.Loss != nil {
		if len(b.Labels) != n {
			return fmt.Errorf("batch has %d labels, want %d", len(b.Labels), n)
		}
		if err := bind(g.Labels, b.Labels); err != nil {
			return err
		}
		if g.HeadIndex != nil {
			if err := g.bindHeadRows(b.Labels); err != nil {
				return err
			}
		}
		items := b.NumItems
		if items <= 0 {
			items = float32(CountCompletionTokens(b.Labels, g.Batch, g.Seq))
		}
		if err := G.Let(g.NumItems, G.NewF32(items)); err != nil {
			return err
		}
	}
	if g.machine == nil {
		g.machine = G.NewTapeMachine(g.G)
	} else {
		g.machine.Reset()
	}
	return g.machine.RunAll()
}

// bindHeadRows binds HeadRows' index and labels for a batch's labels [B, T] (ModeLossHeadRows). The loss
// checks the gathered labels, so the original ones are checked here, where an error can name their place.
func (g *Graph) bindHeadRows(labels []int32) error {
	ce := CEShape{Batch: g.Batch, Seq: g.Seq, Vocab: g.Weights.LMHead.Out, IgnoreIndex: -100}
	if err := checkTargets(labels, ce); err != nil {
		return err
	}
	index, headLabels, _, err := HeadRows(labels, g.Batch, g.Seq)
	if err != nil {
		return err
	}
	for _, u := range []struct {
		node *G.Node
		v    []int32
	}{{g.HeadIndex, index}, {g.HeadLabels, headLabels}} {
		if err := G.Let(u.node, tensor.New(tensor.WithShape(g.Batch, g.Seq), tensor.WithBacking(u.v))); err != nil {
			return fmt.Errorf("binding %s: %w", u.node.Name(), err)
		}
	}
	return nil
}

// Close releases the machine.
func (g *Graph) Close() error {
	if g.machine != nil {
		return g.machine.Close()
	}
	return nil
}

// Values returns a node's float32 data after Run.
func Values(n *G.Node) ([]float32, error) {
	if n == nil || n.Value() == nil {
		return nil, fmt.Errorf("node %v has no value (graph not run?)", n)
	}
	d, _, err := f32Data(n.Op(), n.Name(), n.Value())
	return d, err
}

// Logits runs the model once on batch×seq token ids (row-major, no padding, positions arange(T)) and
// returns the fp32 logits [B·T, V].
func Logits(w *Weights, lora *LoRAParams, ids []int32, batch, seq int) ([]float32, error) {
	g, err := Build(w, lora, batch, seq, ModeLogits)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	if err := g.Run(Batch{IDs: ids}); err != nil {
		return nil, err
	}
	return Values(g.Logits)
}

// Inputs returns a node's inputs in argument order (gorgonia v0.9.18 exports them only through the
// graph's From iterator), as an executor that walks the sorted graph needs them.
func Inputs(n *G.Node) G.Nodes {
	var in G.Nodes
	it := n.Graph().From(n.ID())
	for it.Next() {
		in = append(in, it.Node().(*G.Node))
	}
	return in
}

// checkAdapterModules fails when the adapter has a module that is not a projection of w.
func checkAdapterModules(w *Weights, lora *LoRAParams) error {
	known := map[string]bool{}
	for _, l := range w.Layers {
		for _, p := range l.Projections() {
			known[p.Module] = true
		}
	}
	for m := range lora.A {
		if !known[m] {
			return fmt.Errorf("adapter module %s is not a projection of this model", m)
		}
	}
	return nil
}
