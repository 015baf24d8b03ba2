//go:build t2mcuda

package machine

import (
	"fmt"
	"os"
	"time"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// Machine executes a model.Graph on the device: the graph's topological order, one kernel or cuBLAS call
// per node, frozen weights uploaded once (NF4 stays NF4 and is dequantized into a shared scratch right
// before its GEMM), activations in bf16 at offsets of a liveness memory plan (PlanMemory). It runs
// inference (ModeLogits) and training (ModeLoss or ModeLossHeadRows + BuildGrad, LoRA dropout included)
// graphs; an op it has no launcher for is an error naming the op, never a silent CPU fallback. See doc.go
// for the design.
type Machine struct {
	d    *cuda.Device
	blas *cuda.BLAS
	g    *model.Graph
	ar   *cuda.Arena

	order []*G.Node       // topological: inputs first
	index map[*G.Node]int // position in order
	args  [][]int         // each node's inputs, as positions in order
	out   []cuda.Buffer   // each node's output (planned, or pinned for graph inputs)
	extra []cuda.Buffer   // per node: attention's lse [B, H, T] fp32 (kept for the backward)
	plan  MemPlan

	lin     map[*model.Frozen]*machineWeight
	vecs    map[string]cuda.Buffer // norm weights and biases (bf16) by op name
	scratch cuda.Buffer            // dequantized NF4 weight, the largest
	ones    cuda.Buffer            // [N] bf16 ones: the bias broadcast as a K = 1 GEMM
	N       int                    // rows of the graph's shape, B·T: what the buffers are planned for
	// rB, rT, rN: this Run's shape [rB, rT] (≤ the graph's [B, T]) and its rows rB·rT. A Run computes on
	// the leading rN rows of every [N, C] buffer, so a short micro-batch costs its own tokens, not T's.
	rB, rT, rN int
	// head marks the nodes on the head rows (markHeadRows: in a ModeLossHeadRows graph, the rows the loss
	// reads, gathered after the last layer's attention, and their gradients); nil in other graphs. headRows
	// is this Run's count of those rows (setHeadRows): a node's launch covers rows(i) rows.
	head     []bool
	headRows int

	f32         []bool  // node outputs kept in fp32 (logits, loss, LoRA gradients)
	preset      []bool  // output buffer set by prepare (fused CE outputs, flat LoRA gradients), not planned
	alias       []int   // node whose planned buffer holds this node's output (slices, fused CE grad)
	deps        [][]int // extra liveness reads: attention backward keeps the forward's output
	attnNode    map[*model.AttentionOp]int
	ceNode      map[*model.LMHeadCrossEntropyOp]int // the loss node of each fused lm_head + CE
	ceGrad      map[*model.LMHeadCrossEntropyOp]int // its gradient node, when the graph has one
	fusedAt     []bool                              // runs the fused lm_head + CE (the first of loss and grad)
	attnScr     cuda.Buffer                         // AttentionBackward scratch, the largest
	attnSide    *ops.Side                           // AttentionBackward's dQ stream (nil: T2M_GPU_ATTN_SIDE=0)
	ceScr       cuda.Buffer                         // LMHeadCrossEntropy scratch
	numItems    float32                             // this Run's loss normalizer
	lossTargets int                                 // rows of this Run that predict a label (setLossTargets)

	opt *machineOpt // LoRA parameters, gradients and AdamW state, flat (training graphs)
	// tmp is one scratch as large as the largest need: SwiGLU's other gradient, made by the first node of
	// a pair and copied by the second (swigluCopy).
	tmp      cuda.Buffer
	tmpBytes int64

	loraBytes int64 // arena bytes of the LoRA parameters, gradients and optimizer state (Memory)

	mids    map[*model.LinearOp]*loraMid // each LoRA linear's rank-r intermediates
	loraScr cuda.Buffer                  // ops.LoRAGrad's partial sums, the largest need
	// loraKernel says whether the LoRA products of ranks 8 and 16 use ops.LoRAGrad (read once, at build).
	loraKernel bool
	// hostLaunch and hostWait split the last Run's wall time (HostTimes).
	hostLaunch, hostWait time.Duration

	// ropeCS is the (cos, sin) table [N, D/2] of this Run's positions (ops.RoPETable), made by the first RoPE
	// launch of a Run and read by every layer's (ops.RoPEApply); ropeFor says for which positions node,
	// theta and head size, nil until made in this Run.
	ropeCS  cuda.Buffer
	ropeFor *ropeKey

	// SwiGLU's backward is two nodes (dgate, dup) over the same inputs; its kernel makes both. The first of a
	// pair to run writes its sibling's gradient into tmp, and the sibling (swigluCopy) copies it from there
	// instead of running the kernel again (tmp has no other user, and no other SwiGLU backward runs between).
	swigluSeen map[[3]int]*G.Node // the first SwiGLU backward over each (dh, gate, up)
	swigluCopy map[*G.Node]bool

	// A LoRA dropout's backward whose only reader is a gradient sum runs inside that sum (ops.DropoutAdd):
	// dropAdd maps the sum to it, and dropSkip marks the dropout node, which then has no buffer of its own,
	// and the LoRA input gradient it drops when only it reads that (ops.LoRADropoutAdd computes it).
	dropAdd  map[*G.Node]dropoutAdd
	dropSkip map[*G.Node]bool
	// Likewise a sum whose term is a GEMM's input gradient or RMSNorm's (foldSums): sumFold maps the sum to
	// it, foldSkip marks the term.
	sumFold  map[*G.Node]sumFold
	foldSkip map[*G.Node]bool
	// dropRead marks the LoRA dropouts whose readers drop the dropout's input as they read it (readDropouts).
	dropRead map[*G.Node]bool

	fwd        []bool          // the nodes the graph's output (loss or logits) depends on: what an evaluation Run runs
	recomputed int             // launches repeated for activation recomputation (Options.Recompute)
	pending    []*model.Frozen // NF4 weights in the order the graph reaches them, until placeWeights uploads them
	cacheBytes int64           // bf16 weight copies kept (Options.WeightCacheBytes)
	cached     int             // how many weights they are
	prof       *profiler       // launch timing (SetProfile), or nil
	run        RunOptions      // this Run's options (its shape, evaluation)
}

// machineWeight is a frozen [Out, In] weight on the device: NF4 (dequantized per use) or bf16 (a table, a
// bf16 checkpoint's weight, or an NF4 weight's cached copy).
type machineWeight struct {
	nf4   *ops.NF4Weight
	dense cuda.Buffer
	out   int
	in    int
}

// New uploads g's weights and plans its activations on d. arenaBytes bounds all the machine's
// device memory (weights included). The logits and the nodes in keep stay readable after Run (Output);
// every other activation's memory is reused once its last reader has run.
func New(d *cuda.Device, g *model.Graph, arenaBytes int64, keep ...*G.Node) (*Machine, error) {
	return NewWithOptions(d, g, arenaBytes, Options{Keep: keep})
}

// Options change how NewWithOptions compiles a graph.
type Options struct {
	Keep []*G.Node // nodes whose values stay readable after Run (Output), besides the logits and the loss
	// Recompute trades compute for memory in a training graph (gradient checkpointing): the forward keeps
	// only each layer's input (g.Hidden), and each layer's activations that the backward reads are
	// computed again right before the layer's backward (RecomputeSchedule). Results are unchanged.
	Recompute bool
	// WeightCacheBytes bounds the bf16 copies of NF4 weights the machine keeps so that their uses skip the
	// dequantization (placeWeights): smallest weights first, never past the free memory the activation plan
	// leaves. 0: every NF4 weight is dequantized at each use.
	WeightCacheBytes int64
}

// NewWithOptions is New with options.
func NewWithOptions(d *cuda.Device, g *model.Graph, arenaBytes int64, o Options) (*Machine, error) {
	blas, err := d.BLAS()
	if err != nil {
		return nil, err
	}
	ar, err := cuda.NewArena(d, arenaBytes)
	if err != nil {
		return nil, err
	}
	m, err := build(d, blas, ar, g, o)
	if err != nil {
		ar.Free() // what the failed build took (weights uploaded before the plan did not fit, say)
		return nil, err
	}
	return m, nil
}

// build is New after the arena: it uploads the weights and plans the activations in ar.
func build(d *cuda.Device, blas *cuda.BLAS, ar *cuda.Arena, g *model.Graph, o Options) (*Machine, error) {
	var err error
	m := &Machine{d: d, blas: blas, g: g, ar: ar, index: map[*G.Node]int{}, lin: map[*model.Frozen]*machineWeight{},
		vecs: map[string]cuda.Buffer{}, N: g.Batch * g.Seq, rB: g.Batch, rT: g.Seq, rN: g.Batch * g.Seq,
		attnNode: map[*model.AttentionOp]int{},
		ceNode:   map[*model.LMHeadCrossEntropyOp]int{}, ceGrad: map[*model.LMHeadCrossEntropyOp]int{},
		loraKernel: os.Getenv("T2M_GPU_LORA_GRAD") != "0"}
	sorted, err := G.Sort(g.G)
	if err != nil {
		return nil, fmt.Errorf("gpu: machine: sorting the graph: %w", err)
	}
	for i := len(sorted) - 1; i >= 0; i-- { // G.Sort puts outputs first
		m.index[sorted[i]] = len(m.order)
		m.order = append(m.order, sorted[i])
	}
	n := len(m.order)
	m.args, m.out, m.extra = make([][]int, n), make([]cuda.Buffer, n), make([]cuda.Buffer, n)
	m.f32, m.alias, m.deps, m.preset = make([]bool, n), make([]int, n), make([][]int, n), make([]bool, n)
	m.fusedAt = make([]bool, n)
	if err := m.newOpt(); err != nil {
		return nil, err
	}
	m.loraBytes = ar.Peak()        // the first allocations: LoRA parameters, gradients, optimizer state
	for i, node := range m.order { // the fused loss runs at whichever of its two nodes comes first
		switch op := node.Op().(type) {
		case *model.LMHeadCrossEntropyOp:
			m.ceNode[op] = i
		case *model.LMHeadCrossEntropyGradOp:
			m.ceGrad[op.CE] = i
		}
	}
	names, bytes := make([]string, n), make([]int64, n)
	pinned, keepOut := make([]bool, n), make([]bool, n)
	kept := map[*G.Node]bool{g.Logits: true, g.Loss: true}
	for _, l := range g.LoRA {
		kept[l.GradA], kept[l.GradB] = true, true
	}
	for _, k := range o.Keep {
		kept[k] = true
	}
	for i, node := range m.order {
		names[i], m.alias[i] = node.Name(), i
		it := g.G.From(node.ID())
		for it.Next() {
			m.args[i] = append(m.args[i], m.index[it.Node().(*G.Node)])
		}
		if node.Op() == nil { // a graph input: ids, positions, mask (int32), LoRA A/B (float32 → bf16)
			pinned[i] = true
			if err := m.uploadInput(i, node); err != nil {
				return nil, err
			}
			continue
		}
		if err := m.prepare(i, node); err != nil {
			return nil, err
		}
		if m.alias[i] != i || m.preset[i] || isSeed(node) {
			pinned[i] = true // a view of another node's buffer, a buffer set by prepare, or the host loss seed
			continue
		}
		elems := int64(max(node.Shape().TotalSize(), 1))
		bytes[i] = 2 * elems
		if m.f32[i] {
			bytes[i] = 4 * elems
		}
		keepOut[i] = kept[node]
	}
	m.fuseDropoutAdds(pinned, keepOut)
	if os.Getenv("T2M_GPU_FOLD") != "0" {
		m.foldSums(pinned, keepOut)
	}
	if !o.Recompute && os.Getenv("T2M_GPU_DROP_READ") != "0" {
		m.readDropouts(pinned, keepOut)
	}
	if o.Recompute && g.Loss != nil {
		if names, bytes, pinned, keepOut, err = m.recompute(names, bytes, pinned, keepOut); err != nil {
			return nil, err
		}
		n = len(m.order)
	}
	if err := m.markHeadRows(); err != nil {
		return nil, err
	}
	// Liveness reads: a view's readers read its owner; attention backward also reads the forward's output.
	reads := make([][]int, n)
	for j := range n {
		for _, a := range append(append([]int{}, m.args[j]...), m.deps[j]...) {
			reads[j] = append(reads[j], m.alias[a])
		}
	}
	if m.tmpBytes > 0 {
		if m.tmp, err = m.alloc(m.tmpBytes, "launch scratch"); err != nil {
			return nil, err
		}
	}
	ts, tnode, err := Liveness(names, bytes, reads, pinned, keepOut)
	if err != nil {
		return nil, fmt.Errorf("gpu: machine: %w", err)
	}
	if m.plan, err = PlanMemory(ts); err != nil {
		return nil, fmt.Errorf("gpu: machine: %w", err)
	}
	if err := m.placeWeights(o.WeightCacheBytes, m.plan.Total); err != nil {
		return nil, err
	}
	if err := ar.Reserve(m.plan.Total); err != nil {
		return nil, fmt.Errorf("gpu: machine: activations: %w", err)
	}
	for k, i := range tnode {
		m.out[i] = ar.At(m.plan.Offsets[k], ts[k].Bytes)
	}
	for i := range m.order { // views: resolved now that their owners have buffers
		if err := m.bindView(i); err != nil {
			return nil, err
		}
	}
	m.markForward()
	return m, d.Sync()
}

// Memory is the machine's device memory by use, in bytes: the LoRA parameters, gradients and optimizer
// state; the frozen weights with their scratch buffers; the activations' liveness plan; and what its arena
// holds on the device (their sum, rounded up to the arena's growth step).
func (m *Machine) Memory() (lora, weights, activations, committed int64) {
	return m.loraBytes, m.ar.Peak() - m.loraBytes - m.plan.Total, m.plan.Total, m.ar.Committed()
}

// Close frees the machine's device memory (weights, activations, optimizer state).
func (m *Machine) Close() error {
	if m.ar == nil {
		return nil
	}
	if m.attnSide != nil {
		_ = m.attnSide.Close()
		m.attnSide = nil
	}
	err := m.ar.Free()
	m.ar = nil
	return err
}

// PlannedBytes is the activation region's size and its lower bound (the most bytes live at once).
func (m *Machine) PlannedBytes() (int64, int64) { return m.plan.Total, m.plan.Floor }

func (m *Machine) alloc(bytes int64, what string) (cuda.Buffer, error) {
	return m.ar.Alloc(bytes, what)
}

// needTmp records that a launch needs bytes of the shared launch scratch.
func (m *Machine) needTmp(bytes int64) { m.tmpBytes = max(m.tmpBytes, bytes) }

// uploadBF16 copies float32 values to a new bf16 buffer (cuda.UploadBF16: in pieces, rounded in parallel).
func (m *Machine) uploadBF16(v []float32, what string) (cuda.Buffer, error) {
	b, err := m.alloc(int64(len(v))*2, what)
	if err != nil {
		return cuda.Buffer{}, err
	}
	return b, cuda.UploadBF16(m.d, b, v)
}

// uploadTable copies a float32 or bf16 table (the embedding, lm_head) to a new bf16 buffer [Out, In]
// (UploadTable).
func (m *Machine) uploadTable(f *model.Frozen) (cuda.Buffer, error) {
	b, err := m.alloc(int64(f.Out)*int64(f.In)*2, f.Name)
	if err != nil {
		return cuda.Buffer{}, err
	}
	return b, UploadTable(m.d, b, f)
}

// UploadTable writes a float32 or bf16 table f (the embedding, lm_head) into dst as bf16 [Out, In]: float32
// rounded, bf16 as is; a bf16 table viewed in the checkpoint's mapping then leaves host memory
// (Frozen.Evict). The training machine and the decoder both upload tables this way.
func UploadTable(d *cuda.Device, dst cuda.Buffer, f *model.Frozen) error {
	switch {
	case f.F32 != nil:
		return cuda.UploadBF16(d, dst, f.F32)
	case f.BF16 == nil:
		return fmt.Errorf("gpu: table %s has no float32 or bf16 data", f.Name)
	case len(f.BF16) != f.Out*f.In:
		return fmt.Errorf("gpu: table %s has %d bf16 values, want %d × %d", f.Name, len(f.BF16), f.Out, f.In)
	}
	if err := cuda.Upload(d, dst, f.BF16); err != nil {
		return fmt.Errorf("gpu: table %s: %w", f.Name, err)
	}
	if err := f.Evict(); err != nil {
		return fmt.Errorf("gpu: table %s: %w", f.Name, err)
	}
	return nil
}

func (m *Machine) uploadInput(i int, node *G.Node) error {
	size := int64(node.Shape().TotalSize())
	switch node {
	case m.g.IDs, m.g.Positions, m.g.Mask, m.g.Labels, m.g.HeadIndex, m.g.HeadLabels:
		b, err := m.alloc(4*size, node.Name())
		m.out[i] = b
		return err
	case m.g.NumItems:
		return nil // a host value, passed to the loss launcher
	}
	if node.Dtype() != G.Float32 {
		return fmt.Errorf("gpu: machine: input %s of type %v is not supported", node.Name(), node.Dtype())
	}
	if m.opt != nil {
		if sl, ok := m.opt.param[node]; ok { // a LoRA matrix: its bf16 copy lives in the flat parameters
			m.out[i] = m.opt.bf.Slice(sl.off*2, sl.n*2)
			return nil
		}
	}
	v, err := model.Values(node)
	if err != nil {
		return fmt.Errorf("gpu: machine: input %s: %w", node.Name(), err)
	}
	m.out[i], err = m.uploadBF16(v, node.Name())
	return err
}

// weight uploads a frozen weight once: float32 or bf16 as bf16 now; NF4 later, once the activations are
// planned (placeWeights), as NF4 or as a cached bf16 copy.
func (m *Machine) weight(f *model.Frozen) (*machineWeight, error) {
	if w, ok := m.lin[f]; ok {
		return w, nil
	}
	w := &machineWeight{out: f.Out, in: f.In}
	switch {
	case f.F32 != nil || f.BF16 != nil:
		var err error
		if w.dense, err = m.uploadTable(f); err != nil {
			return nil, err
		}
	case f.Quant != nil:
		m.pending = append(m.pending, f)
	default:
		return nil, fmt.Errorf("gpu: machine: weight %s has no data", f.Name)
	}
	m.lin[f] = w
	return w, nil
}

// prepare uploads what node i's op owns (weights, norm vectors, biases) and its extra buffers.
func (m *Machine) prepare(i int, node *G.Node) error {
	var err error
	switch op := node.Op().(type) {
	case *model.EmbeddingOp:
		if _, ok := m.vecs[op.Name]; !ok {
			m.vecs[op.Name], err = m.uploadTable(op.Table)
		}
	case *model.RMSNormOp:
		_, err = m.vec(op.Name, op.Weight)
	case *model.LinearOp:
		if _, err = m.weight(op.Weight); err != nil {
			return err
		}
		if op.Bias != nil {
			if _, err = m.vec(op.Name+".bias", op.Bias); err != nil {
				return err
			}
			if m.ones.Bytes == 0 {
				ones := make([]float32, m.N)
				for k := range ones {
					ones[k] = 1
				}
				if m.ones, err = m.uploadBF16(ones, "ones"); err != nil {
					return err
				}
			}
		}
		if op.Rank > 0 {
			_, err = m.mid(op)
		}
	case *model.LMHeadOp:
		m.f32[i] = true // fp32 logits
		_, err = m.weight(op.Weight)
	case *model.AttentionOp:
		m.extra[i], err = m.alloc(int64(m.g.Batch*op.Heads*m.g.Seq)*4, op.Name+" lse")
	case *model.RoPEOp:
		if need := ops.RoPETableBytes(m.N, op.HeadDim); op.HeadDim%16 == 0 && need > m.ropeCS.Bytes {
			m.ropeCS, err = m.alloc(need, "rope table")
		}
	case *model.AddOp, *model.SwiGLUOp:
	case *model.GatherRowsOp, *model.ScatterRowsOp: // rows of C bf16 copied as 16-byte words
		if c := node.Shape(); len(c) != 2 || c[1]%8 != 0 {
			return fmt.Errorf("gpu: machine: %s: rows %v, want [N, C] with C a multiple of 8", node.Name(), c)
		}
	case *model.DropoutOp:
		if c := node.Shape(); len(c) != 2 || c[1]%8 != 0 {
			return fmt.Errorf("gpu: machine: %s: dropout input %v, want [N, C] with C a multiple of 8", node.Name(), c)
		}
	case *model.AttentionGradOp, *model.SliceOp, *model.SwiGLUGradOp, *model.RMSNormGradOp,
		*model.LinearGradInputOp, *model.LoRAGradOp, *model.LMHeadCrossEntropyOp,
		*model.LMHeadCrossEntropyGradOp:
		return m.prepareBwd(i, node)
	default:
		if isGorgoniaAdd(node) || isSeed(node) {
			return nil
		}
		return fmt.Errorf("gpu: machine: node %s: op %v (%T) has no GPU launcher yet", node.Name(), node.Op(), node.Op())
	}
	if a, ok := node.Op().(*model.AttentionOp); ok {
		m.attnNode[a] = i
	}
	return err
}

// vec uploads a float32 vector owned by an op once, by name.
func (m *Machine) vec(name string, v []float32) (cuda.Buffer, error) {
	if b, ok := m.vecs[name]; ok {
		return b, nil
	}
	b, err := m.uploadBF16(v, name)
	m.vecs[name] = b
	return b, err
}

// in returns node i's k-th input buffer.
func (m *Machine) in(i, k int) cuda.Buffer { return m.out[m.args[i][k]] }

func (m *Machine) launch(i int, node *G.Node) error {
	d, N := m.d, m.rows(i)
	y := m.out[i]
	switch op := node.Op().(type) {
	case *model.EmbeddingOp:
		return ops.EmbeddingForward(d, y, m.vecs[op.Name], m.in(i, 0), cuda.Buffer{}, N, op.Vocab, op.Hidden)
	case *model.RMSNormOp:
		return ops.RMSNormForward(d, y, m.in(i, 0), m.vecs[op.Name], N, len(op.Weight), op.Eps)
	case *model.LinearOp:
		w := m.lin[op.Weight]
		W, err := m.dense(w)
		if err != nil {
			return err
		}
		l := ops.LinearArgs{X: cuda.M(m.in(i, 0), N, w.in, cuda.BF16T), W: W, Y: cuda.M(y, N, w.out, cuda.BF16T)}
		if op.Bias != nil {
			l.Bias, l.Ones = cuda.M(m.vecs[op.Name+".bias"], 1, w.out, cuda.BF16T), cuda.M(m.ones, N, 1, cuda.BF16T)
		}
		if op.Rank > 0 { // with Split (LoRA dropout) the branch reads the fourth input
			l.A, l.B = cuda.M(m.in(i, 1), op.Rank, w.in, cuda.BF16T), cuda.M(m.in(i, 2), w.out, op.Rank, cuda.BF16T)
			x := m.mids[op]
			x.gReady = false
			l.H, l.Scale = cuda.M(x.h, N, op.Rank, cuda.BF16T), op.Scaling
			if xin, p, seed, ok := m.readDropout(i, 3); ok { // h = dropout(x)·Aᵀ, dropped as read
				if err := ops.LoRAGrad(d, ops.LoRAGradArgs{X: xin, Bm: l.A.Buf, BmT: true, G: x.h, N: N, C: w.in,
					R: op.Rank, Drop: p, Seed: seed}, m.loraScr); err != nil {
					return err
				}
				l.HReady = true
			} else if op.Split {
				l.XL = cuda.M(m.in(i, 3), N, w.in, cuda.BF16T)
			}
		}
		return ops.Linear(m.d, m.blas, l)
	case *model.LMHeadOp:
		w := m.lin[op.Weight]
		W, err := m.dense(w)
		if err != nil {
			return err
		}
		return m.blas.Linear(cuda.M(m.in(i, 0), N, w.in, cuda.BF16T), W, 0, cuda.M(y, N, w.out, cuda.F32T))
	case *model.RoPEOp:
		return m.rope(i, op)
	case *model.GatherRowsOp: // x [rN, C] → the head rows [N, C], zero rows where the index is −1
		return ops.GatherRows(d, y, m.in(i, 0), m.in(i, 1), N, m.rN, node.Shape()[1])
	case *model.AttentionOp:
		return ops.AttentionForward(d, y, m.extra[i], m.in(i, 0), m.in(i, 1), m.in(i, 2), m.in(i, 3), m.attnDims(op))
	case *model.AddOp:
		return ops.AddBF16(d, y, m.in(i, 0), m.in(i, 1), m.runSize(i))
	case *model.SwiGLUOp:
		return ops.SwiGLUForward(d, y, m.in(i, 0), m.in(i, 1), m.runSize(i))
	case *model.DropoutOp:
		if m.dropSkip[node] || m.dropRead[node] { // run inside the sum that reads it, or by its readers
			return nil
		}
		return m.dropout(i, node, op)
	}
	if isGorgoniaAdd(node) {
		if f, ok := m.sumFold[node]; ok {
			return m.foldedSum(i, f)
		}
		if f, ok := m.dropAdd[node]; ok { // y = other + dropout(x)
			op := f.drop.Op().(*model.DropoutOp)
			dims := m.dropoutDims(i, f.drop.Shape()[1])
			if f.lora != nil { // x = s·(dy·B)·A, never written
				return m.loraDropoutAdd(i, f, dims, op)
			}
			return ops.DropoutAdd(d, y, m.in(i, f.other), m.out[m.deps[i][f.dep]], dims, op.P, op.Seed())
		}
		return ops.AddBF16(d, y, m.in(i, 0), m.in(i, 1), m.runSize(i))
	}
	return m.launchBwd(i, node)
}

// dense returns w as a bf16 [out, in] matrix, dequantizing NF4 into the scratch.
func (m *Machine) dense(w *machineWeight) (cuda.Mat, error) {
	if w.nf4 == nil {
		return cuda.M(w.dense, w.out, w.in, cuda.BF16T), nil
	}
	if err := m.timed("of which NF4 dequantize", func() error { return ops.DequantNF4(m.d, w.nf4, m.scratch) }); err != nil {
		return cuda.Mat{}, err
	}
	return cuda.M(m.scratch, w.out, w.in, cuda.BF16T), nil
}

// runSize is the number of values step i's node holds in this Run: an activation [N, C] of the graph's
// shape holds [rows(i), C] (rN, or the head rows); anything else (the loss, a LoRA parameter or its
// gradient) its full shape.
func (m *Machine) runSize(i int) int {
	node := m.order[i]
	s := node.Shape()
	if len(s) != 2 || s[0] != m.N || node.Op() == nil || m.preset[i] {
		return s.TotalSize()
	}
	if op, ok := node.Op().(*model.LoRAGradOp); ok && op.WRT != 'X' {
		return s.TotalSize()
	}
	return m.rows(i) * s[1]
}

// Output downloads a node's value as float32 (bf16 activations widened; logits are fp32) after Run: the
// logits, or a node passed to New in keep (other nodes' memory has been reused).
func (m *Machine) Output(node *G.Node) ([]float32, error) {
	i, ok := m.index[node]
	if !ok || m.out[i].Bytes == 0 {
		return nil, fmt.Errorf("gpu: machine: node %v has no device buffer", node)
	}
	n := max(m.runSize(i), 1)
	if m.f32[i] {
		v := make([]float32, n)
		return v, cuda.Download(m.d, v, m.out[i])
	}
	raw := make([]uint16, n)
	if err := cuda.Download(m.d, raw, m.out[i]); err != nil {
		return nil, err
	}
	v := make([]float32, n)
	for k, b := range raw {
		v[k] = cuda.F32(b)
	}
	return v, nil
}
