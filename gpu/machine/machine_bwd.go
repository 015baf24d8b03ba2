//go:build t2mcuda

package machine

import (
	"fmt"
	"math"
	"os"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// ceChunk is the rows of fp32 logits the fused lm_head + cross-entropy holds at a time.
const ceChunk = 256

// isFusedCE reports the two nodes of the fused lm_head + cross-entropy.
func isFusedCE(n *G.Node) bool {
	switch n.Op().(type) {
	case *model.LMHeadCrossEntropyOp, *model.LMHeadCrossEntropyGradOp:
		return true
	}
	return false
}

// isSeed reports gorgonia's scalar constant (the loss gradient seed, 1).
func isSeed(n *G.Node) bool {
	return n.Op() != nil && fmt.Sprintf("%T", n.Op()) == "gorgonia.constantScalar"
}

func (m *Machine) attnDims(op *model.AttentionOp) ops.AttnDims {
	return ops.AttnDims{B: m.rB, T: m.rT, H: op.Heads, KVH: op.KVHeads, D: op.HeadDim,
		Scale: float32(1 / math.Sqrt(float64(op.HeadDim)))}
}

// ceDims are the fused loss's sizes over rows rows of h: the Run's [rB, rT] for rN rows, or the head rows
// as one block [1, rows] (model.HeadRows: its leading rows in one block give the same loss).
func (m *Machine) ceDims(op *model.LMHeadCrossEntropyOp, rows int) ops.CEDims {
	B, T := m.rB, m.rT
	if rows != m.rN {
		B, T = 1, rows
	}
	return ops.CEDims{B: B, T: T, Hidden: op.Weight.In, Vocab: op.Weight.Out, IgnoreIndex: -100, Chunk: ceChunk}
}

// prepareBwd readies the backward and loss nodes: weights, extra buffers, views, liveness dependencies.
func (m *Machine) prepareBwd(i int, node *G.Node) error {
	var err error
	switch op := node.Op().(type) {
	case *model.AttentionGradOp:
		fwd, ok := m.attnNode[op.Attn]
		if !ok {
			return fmt.Errorf("gpu: machine: %s: its forward attention is not in the graph", node.Name())
		}
		m.deps[i] = []int{fwd} // the backward reads the forward's output o and lse
		if need := ops.AttentionBackwardScratchBytes(m.attnDims(op.Attn)); need > m.attnScr.Bytes {
			if m.attnScr, err = m.alloc(need, "attention backward scratch"); err != nil {
				return err
			}
		}
		if m.attnSide == nil && os.Getenv("T2M_GPU_ATTN_SIDE") != "0" {
			m.attnSide, err = ops.NewSide(m.d)
		}
	case *model.SliceOp:
		if node.Dtype() != G.Float32 {
			return fmt.Errorf("gpu: machine: slice %s of type %v", node.Name(), node.Dtype())
		}
		m.alias[i] = m.alias[m.args[i][0]]
	case *model.SwiGLUGradOp:
		m.needTmp(int64(node.Shape().TotalSize()) * 2) // the gradient the node does not return
		if m.swigluSeen == nil {
			m.swigluSeen, m.swigluCopy = map[[3]int]*G.Node{}, map[*G.Node]bool{}
		}
		key := [3]int(m.args[i])
		if first, ok := m.swigluSeen[key]; ok && first.Op().(*model.SwiGLUGradOp).WRT != op.WRT {
			m.swigluCopy[node] = true // prepared (and run) after its sibling
		} else {
			m.swigluSeen[key] = node
		}
	case *model.RMSNormGradOp:
		_, err = m.vec(op.Norm.Name, op.Norm.Weight)
	case *model.LinearGradInputOp:
		if _, err = m.weight(op.Lin.Weight); err == nil && op.Arity() == 3 {
			_, err = m.mid(op.Lin) // g = dy·B
		}
	case *model.LoRAGradOp:
		if _, err := m.mid(op.Lin); err != nil { // g = dy·B, h = xl·Aᵀ
			return err
		}
		if op.WRT == 'X' {
			return nil // dxl [N, in]: a bf16 activation like dx
		}
		if op.WRT != 'A' && op.WRT != 'B' {
			return fmt.Errorf("gpu: machine: %v: unknown LoRA gradient %q", op, op.WRT)
		}
		m.f32[i] = true
		if m.opt != nil {
			if sl, ok := m.opt.grad[node]; ok { // a gradient the optimizer reads: in the flat gradients
				m.out[i], m.preset[i] = m.opt.g.Slice(sl.off*4, sl.n*4), true
			}
		}
		if !m.loraGradOn(op.Lin.Rank) {
			return nil
		}
		x := m.mids[op.Lin]
		if op.WRT == 'A' {
			return m.needLoRAScratch(op.Lin.Weight.In, op.Lin.Rank)
		}
		if err := m.needLoRAScratch(op.Lin.Weight.Out, op.Lin.Rank); err != nil {
			return err
		}
		if m.preset[i] { // dB straight into the flat gradient
			x.dB = m.out[i]
			return nil
		}
		x.dBCopy = true
		x.dB, err = m.alloc(int64(op.Lin.Weight.Out*op.Lin.Rank)*4, op.Lin.Name+" lora dB")
	case *model.LMHeadCrossEntropyOp:
		// Loss [1] fp32 and dh [N, H] bf16 come from one fused launch; both buffers are set here, not planned.
		m.f32[i], m.preset[i] = true, true
		if _, err = m.weight(op.Weight); err != nil {
			return err
		}
		if m.out[i], err = m.alloc(4, "loss"); err != nil {
			return err
		}
		g, hasGrad := m.ceGrad[op]
		if !hasGrad {
			g = -1
			if m.extra[i], err = m.alloc(int64(m.N*op.Weight.In)*2, "lm_head+CE dh (unused)"); err != nil {
				return err
			}
		}
		first := i
		if hasGrad && g < i {
			first = g
		}
		m.fusedAt[first] = true
		most := m.ceDims(op, m.N) // at build, rT is the graph's T
		most.Targets = m.N        // every row with a target: the gathered rows' scratch at its largest
		if need := ops.LMHeadCrossEntropyScratchBytes(most); need > m.ceScr.Bytes {
			if m.ceScr, err = m.alloc(need, "lm_head+CE scratch"); err != nil {
				return err
			}
		}
	case *model.LMHeadCrossEntropyGradOp:
		if _, ok := m.ceNode[op.CE]; !ok {
			return fmt.Errorf("gpu: machine: %s: its loss node is not in the graph", node.Name())
		}
		seed := m.order[m.args[i][3]]
		if v, ok := seedValue(seed); !ok || v != 1 {
			return fmt.Errorf("gpu: machine: %s: the loss gradient is %v, not the constant 1 the fused kernel assumes",
				node.Name(), seed)
		}
		m.preset[i] = true
		m.out[i], err = m.alloc(int64(m.N*op.CE.Weight.In)*2, "lm_head+CE dh")
	}
	return err
}

// seedValue reads a float32 scalar constant.
func seedValue(n *G.Node) (float32, bool) {
	if !isSeed(n) || n.Value() == nil {
		return 0, false
	}
	v, ok := n.Value().Data().(float32)
	return v, ok
}

// bindView points a slice node at its part of its owner's buffer, and a sum folded in place (foldSums) at
// its owner's whole buffer.
func (m *Machine) bindView(i int) error {
	if _, folded := m.sumFold[m.order[i]]; folded && m.alias[i] != i {
		m.out[i] = m.out[m.alias[i]]
		return nil
	}
	op, ok := m.order[i].Op().(*model.SliceOp)
	if !ok {
		return nil
	}
	owner := m.out[m.alias[i]]
	size := int64(m.order[i].Shape().TotalSize())
	if int64(op.Offset+int(size))*2 > owner.Bytes {
		return fmt.Errorf("gpu: machine: slice %s [%d, +%d) outside its %d-byte owner", m.order[i].Name(), op.Offset,
			size, owner.Bytes)
	}
	m.out[i] = owner.Slice(int64(op.Offset)*2, size*2)
	return nil
}

// launchBwd runs one backward or loss node.
func (m *Machine) launchBwd(i int, node *G.Node) error {
	d, N, y := m.d, m.rows(i), m.out[i]
	switch op := node.Op().(type) {
	case *model.AttentionGradOp:
		fwd := m.deps[i][0] // the forward attention (or its recomputation) whose output and lse it reads
		ad := m.attnDims(op.Attn)
		// dq | dk | dv at the offsets of the graph's shape (where its slice nodes read them), each [rN, ·].
		nq, nkv := int64(m.N*ad.H*ad.D)*2, int64(m.N*ad.KVH*ad.D)*2
		return ops.AttentionBackward(d, m.attnSide, y.Slice(0, nq), y.Slice(nq, nkv), y.Slice(nq+nkv, nkv), m.in(i, 0), m.in(i, 1),
			m.in(i, 2), m.out[fwd], m.in(i, 4), m.extra[fwd], m.in(i, 3), m.attnScr, ad)
	case *model.SwiGLUGradOp:
		n := m.runSize(i)
		if m.swigluCopy[node] { // its sibling computed it into tmp
			return d.Copy(y.Slice(0, int64(n)*2), m.tmp.Slice(0, int64(n)*2))
		}
		dgate, dup := y, m.tmp
		if op.WRT == 1 {
			dgate, dup = m.tmp, y
		}
		return ops.SwiGLUBackward(d, dgate, dup, m.in(i, 2), m.in(i, 0), m.in(i, 1), n)
	case *model.RMSNormGradOp:
		cols := len(op.Norm.Weight)
		return ops.RMSNormBackward(d, y, m.in(i, 1), m.in(i, 0), m.vecs[op.Norm.Name], N, cols, op.Norm.Eps)
	case *model.LinearGradInputOp:
		return m.inputGrad(op, m.args[i], y, 0, N)
	case *model.ScatterRowsOp: // the head rows' gradient [rows, C] → dx [rN, C], zero where no row goes
		return ops.ScatterRows(d, y, m.in(i, 0), m.in(i, 1), m.rows(m.args[i][0]), m.rN, node.Shape()[1])
	case *model.LoRAGradOp:
		if op.WRT == 'X' {
			if m.dropSkip[node] { // computed inside the gradient sum that reads its dropout (loraDropoutAdd)
				return nil
			}
			return m.loraInputGrad(i, op)
		}
		r, in, out := op.Lin.Rank, op.Lin.Weight.In, op.Lin.Weight.Out
		xl, dy := cuda.M(m.in(i, 0), N, in, cuda.BF16T), cuda.M(m.in(i, 1), N, out, cuda.BF16T)
		Bm := cuda.M(m.in(i, 3), out, r, cuda.BF16T)
		if op.WRT == 'A' { // dA = s·(dy·B)ᵀ·xl
			g, err := m.loraG(op.Lin, dy, Bm)
			if err != nil {
				return err
			}
			if m.loraGradOn(r) {
				a := ops.LoRAGradArgs{X: xl.Buf, Y: g.Buf, N: N, C: in, R: r, DW: y, Alpha: op.Lin.Scaling, Transpose: true}
				if xin, p, seed, ok := m.readDropout(i, 0); ok { // xl dropped as read
					a.X, a.Drop, a.Seed = xin, p, seed
				}
				return ops.LoRAGrad(d, a, m.loraScr)
			}
			return m.blas.LinearGradWeight(g, xl, op.Lin.Scaling, 0, cuda.M(y, r, in, cuda.F32T))
		}
		if x := m.mids[op.Lin]; x.dB.Bytes > 0 { // dB comes with g (loraG)
			if _, err := m.loraG(op.Lin, dy, Bm); err != nil {
				return err
			}
			if x.dBCopy {
				return d.Copy(y.Slice(0, x.dB.Bytes), x.dB)
			}
			return nil
		}
		h := cuda.M(m.mids[op.Lin].h, N, r, cuda.BF16T) // dB = s·dyᵀ·(xl·Aᵀ), h from the forward
		return m.blas.LinearGradWeight(dy, h, op.Lin.Scaling, 0, cuda.M(y, out, r, cuda.F32T))
	case *model.LMHeadCrossEntropyOp:
		return m.fusedCE(op)
	case *model.LMHeadCrossEntropyGradOp:
		return m.fusedCE(op.CE)
	}
	return fmt.Errorf("no GPU launcher for %T", node.Op())
}

// inputGrad runs LinearGradInputOp op with inputs in (dy; with a merged LoRA term also A and B, as node
// positions) on N rows: dx = dy·W (+ s·(dy·B)·A) + beta·dx, dx [N, in] bf16.
func (m *Machine) inputGrad(op *model.LinearGradInputOp, in []int, dx cuda.Buffer, beta float32, N int) error {
	w := m.lin[op.Lin.Weight]
	W, err := m.dense(w)
	if err != nil {
		return err
	}
	dy, dxm := cuda.M(m.out[in[0]], N, w.out, cuda.BF16T), cuda.M(dx, N, w.in, cuda.BF16T)
	if op.Arity() == 3 { // s·(dy·B)·A first, then the base product adds onto it (as ops.Linear does)
		r := op.Lin.Rank
		g, err := m.loraG(op.Lin, dy, cuda.M(m.out[in[2]], w.out, r, cuda.BF16T))
		if err != nil {
			return err
		}
		if err := m.blas.Gemm(false, false, op.Lin.Scaling, g, cuda.M(m.out[in[1]], r, w.in, cuda.BF16T), beta, dxm); err != nil {
			return err
		}
		beta = 1
	}
	return m.blas.LinearGradInput(dy, W, 1, beta, dxm)
}

// fusedCE runs the fused lm_head + cross-entropy of op: the loss into its loss node's buffer and dh into
// its gradient node's (or an unused buffer when the graph has no backward). Only the rows that predict a
// label run: their h rows, counted on the host (lossTargets, from the batch's labels), are gathered into one
// matrix, so the lm_head weight is read once per chunk of ceChunk rows for the whole micro-batch rather than
// once per sequence; dh is scattered back, zero elsewhere.
func (m *Machine) fusedCE(op *model.LMHeadCrossEntropyOp) error {
	ce := m.ceNode[op]
	rows := m.rows(ce) // rN, or the head rows (whose labels are HeadLabels', the loss node's input 1)
	dh := m.extra[ce]
	if g, ok := m.ceGrad[op]; ok {
		dh = m.out[g]
	}
	if m.lossTargets == 0 { // no label in this micro-batch: loss and dh are zero
		if err := m.d.Memset(dh.Slice(0, int64(rows)*int64(op.Weight.In)*2), 0); err != nil {
			return err
		}
		return m.d.Memset(m.out[ce], 0)
	}
	W, err := m.dense(m.lin[op.Weight])
	if err != nil {
		return err
	}
	c := m.ceDims(op, rows)
	c.Targets = m.lossTargets
	return ops.LMHeadCrossEntropy(m.d, m.out[ce], dh, m.in(ce, 0), W.Buf, m.in(ce, 1), cuda.Buffer{}, m.ceScr, c,
		m.numItems, 1)
}

// setLossTargets counts the rows that predict a label (row n predicts labels[n+1] of its own sequence): what
// fusedCE gathers. HeadRows' layout has as many (the same rows, moved), so the count of the batch's labels
// is also that of the head rows' labels.
func (m *Machine) setLossTargets(labels []int32) {
	m.lossTargets = model.CountCompletionTokens(labels, m.rB, m.rT)
}
