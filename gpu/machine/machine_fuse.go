//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// What the machine shares or fuses across nodes of one Run: gradient sums run together with the LoRA dropout
// (and LoRA input gradient) they add, one RoPE table for every layer, and each LoRA linear's rank-r
// intermediates.

// dropoutAdd is a gradient sum y = other + dropout(x) run as one launch: drop is the dropout node, other the
// sum's input position of the other term, and dep the position in the sum's deps of x (the dropout's input,
// which the sum reads instead of the dropout's output). When x is a LoRA branch's input gradient
// (LoRAGradOp 'X', dxl = s·(dy·B)·A) that only the dropout reads, lora is that op and x is never written:
// the launch computes dxl itself (ops.LoRADropoutAdd), and dep is the position of dy, followed by A and B.
type dropoutAdd struct {
	drop       *G.Node
	other, dep int
	lora       *model.LoRAGradOp
}

// fuseDropoutAdds finds the gradient sums (gorgonia adds) with a LoRA dropout's backward as one term that
// nothing else reads and that is not kept: each is run by the sum as one launch, which reads the dropout's
// input instead (a liveness dependency), and the dropout node gets no buffer (pinned). That saves writing
// and reading the dropped gradient, [N, C] bf16 per LoRA linear with dropout. When the dropout's input is
// the LoRA branch's input gradient s·(dy·B)·A and only the dropout reads it, the sum computes it too (from
// dy, A and B, its new dependencies) and that node gets no buffer or launch either: another [N, C] written
// and read, and a rank-r GEMM, saved per LoRA linear (where lora_A is as wide as the dropout, as it always
// is in a model graph; the check keeps the kernel from reading A at the wrong width otherwise).
func (m *Machine) fuseDropoutAdds(pinned, keep []bool) {
	readers := m.readerCounts()
	for i, node := range m.order {
		if !isGorgoniaAdd(node) || len(m.args[i]) != 2 || m.args[i][0] == m.args[i][1] || m.alias[i] != i {
			continue
		}
		for k, j := range m.args[i] {
			op, ok := m.order[j].Op().(*model.DropoutOp)
			if !ok || !op.Grad || readers[j] != 1 || keep[j] || pinned[j] || m.alias[j] != j {
				continue
			}
			if m.dropAdd == nil {
				m.dropAdd, m.dropSkip = map[*G.Node]dropoutAdd{}, map[*G.Node]bool{}
			}
			f := dropoutAdd{drop: m.order[j], other: 1 - k, dep: len(m.deps[i])}
			x := m.args[j][0]
			if lx, ok := m.order[x].Op().(*model.LoRAGradOp); ok && lx.WRT == 'X' && readers[x] == 1 && !keep[x] &&
				!pinned[x] && m.alias[x] == x && lx.Lin.Weight.In == m.order[j].Shape()[1] {
				f.lora = lx // dy, A, B: LoRAGradOp's inputs 1, 2, 3
				m.deps[i] = append(m.deps[i], m.args[x][1], m.args[x][2], m.args[x][3])
				m.dropSkip[m.order[x]], pinned[x] = true, true
			} else {
				m.deps[i] = append(m.deps[i], x)
			}
			m.dropAdd[node] = f
			m.dropSkip[m.order[j]], pinned[j] = true, true
			break
		}
	}
}

// readerCounts gives each node's number of reads as an argument of another node.
func (m *Machine) readerCounts() []int {
	readers := make([]int, len(m.order))
	for _, args := range m.args {
		for _, a := range args {
			readers[a]++
		}
	}
	return readers
}

// ropeKey is what a RoPE table depends on: the positions node, the base and the head size.
type ropeKey struct {
	pos     int
	theta   float32
	headDim int
}

// rope rotates x into y (RoPEOp i): from the Run's table when the head size allows it (a bandwidth-bound
// kernel, the decoder's), else with the per-element kernel that computes its own angles.
func (m *Machine) rope(i int, op *model.RoPEOp) error {
	x, pos, y, N := m.in(i, 0), m.in(i, 1), m.out[i], m.rows(i) // N = rN: RoPE is never on the head rows
	if op.HeadDim%16 != 0 {
		return ops.RoPE(m.d, y, x, pos, N, op.Heads, op.HeadDim, op.Theta, op.Inverse)
	}
	key := ropeKey{pos: m.args[i][1], theta: op.Theta, headDim: op.HeadDim}
	if m.ropeFor == nil || *m.ropeFor != key {
		if err := ops.RoPETable(m.d, m.ropeCS, pos, N, op.HeadDim, op.Theta); err != nil {
			return err
		}
		m.ropeFor = &key
	}
	return ops.RoPEApply(m.d, y, x, m.ropeCS, N, op.Heads, op.HeadDim, op.Inverse)
}

// loraMid holds one LoRA linear's rank-r intermediates of a Run, each [N, r] bf16: h = xl·Aᵀ, written by
// the forward (ops.Linear) and read again by dB = s·dyᵀ·h, and g = dy·B, computed by the first backward
// launch that needs it and read by the others (dA = s·gᵀ·xl, and dxl = s·g·A or the merged dx += s·g·A).
// Each was computed again per reader before: two skinny GEMMs that read a whole [N, in] or [N, out]
// activation, per LoRA linear and micro-batch.
//
// With ops.LoRAGrad (ranks 8 and 16, unless T2M_GPU_LORA_GRAD=0) the launch that makes g makes dB = s·dyᵀ·h
// in the same walk over dy, into dB: the flat gradient slice of the LoRAGradOp 'B' node when it is preset
// there (it then launches nothing), else a buffer of its own that the node copies.
type loraMid struct {
	h, g   cuda.Buffer
	gReady bool // g holds this Run's dy·B (cleared by the forward, which a recomputation repeats)

	dB     cuda.Buffer // [out, r] fp32, made with g (zero: g by cuBLAS alone)
	dBCopy bool        // dB is not the 'B' node's own buffer: the node copies it
}

// loraGradOn reports whether the LoRA products of rank rank use ops.LoRAGrad (m.loraKernel: unless
// T2M_GPU_LORA_GRAD=0, which keeps cuBLAS's skinny GEMMs, as before it).
func (m *Machine) loraGradOn(rank int) bool { return m.loraKernel && ops.LoRAGradRanks(rank) }

// needLoRAScratch grows the scratch of ops.LoRAGrad to what X [N, cols] at rank r needs.
func (m *Machine) needLoRAScratch(cols, r int) error {
	need := ops.LoRAGradScratchBytes(m.N, cols, r)
	if need <= m.loraScr.Bytes {
		return nil
	}
	var err error
	m.loraScr, err = m.alloc(need, "LoRA gradient partial sums")
	return err
}

// mid is op's loraMid, allocated on first use.
func (m *Machine) mid(op *model.LinearOp) (*loraMid, error) {
	if x, ok := m.mids[op]; ok {
		return x, nil
	}
	if m.mids == nil {
		m.mids = map[*model.LinearOp]*loraMid{}
	}
	n := int64(m.N*op.Rank) * 2
	h, err := m.alloc(n, op.Name+" lora h")
	if err != nil {
		return nil, err
	}
	g, err := m.alloc(n, op.Name+" lora dy·B")
	if err != nil {
		return nil, err
	}
	x := &loraMid{h: h, g: g}
	m.mids[op] = x
	return x, nil
}

// loraG is op's g = dy·B [N, r] for this Run: computed once (dy [N, out], B [out, r] bf16; N = dy.Rows, the
// rows of the linear's nodes: rN, or the head rows), then reused.
func (m *Machine) loraG(op *model.LinearOp, dy, B cuda.Mat) (cuda.Mat, error) {
	x := m.mids[op]
	N := dy.Rows
	g := cuda.M(x.g, N, op.Rank, cuda.BF16T)
	if x.gReady {
		return g, nil
	}
	if x.dB.Bytes > 0 { // g and dB = s·dyᵀ·h from one walk over dy
		a := ops.LoRAGradArgs{X: dy.Buf, Y: x.h, Bm: B.Buf, N: N, C: op.Weight.Out, R: op.Rank, DW: x.dB,
			Alpha: op.Scaling, G: x.g}
		if err := ops.LoRAGrad(m.d, a, m.loraScr); err != nil {
			return g, fmt.Errorf("lora dy·B and dB: %w", err)
		}
		x.gReady = true
		return g, nil
	}
	if err := m.blas.Gemm(false, false, 1, dy, B, 0, g); err != nil {
		return g, fmt.Errorf("lora dy·B: %w", err)
	}
	x.gReady = true
	return g, nil
}

// loraDropoutAdd runs the gradient sum i = other + dropout(s·(dy·B)·A) of f (a LoRA branch's input gradient
// that only its dropout reads, fused by fuseDropoutAdds) as one launch, g = dy·B computed once per Run.
func (m *Machine) loraDropoutAdd(i int, f dropoutAdd, dims ops.DropoutDims, op *model.DropoutOp) error {
	lin := f.lora.Lin
	N, r, out := m.rows(i), lin.Rank, lin.Weight.Out
	dep := m.deps[i][f.dep:]
	dy, A, Bm := cuda.M(m.out[dep[0]], N, out, cuda.BF16T), m.out[dep[1]], cuda.M(m.out[dep[2]], out, r, cuda.BF16T)
	g, err := m.loraG(lin, dy, Bm)
	if err != nil {
		return err
	}
	return ops.LoRADropoutAdd(m.d, m.out[i], m.in(i, f.other), g.Buf, A, r, dims, op.P, lin.Scaling, op.Seed())
}

// loraInputGrad runs LoRAGradOp 'X' (LoRA dropout's branch): dxl = s·(dy·B)·A [N, in] bf16.
func (m *Machine) loraInputGrad(i int, op *model.LoRAGradOp) error {
	N, r, in, out := m.rows(i), op.Lin.Rank, op.Lin.Weight.In, op.Lin.Weight.Out
	dy := cuda.M(m.in(i, 1), N, out, cuda.BF16T)
	A, Bm := cuda.M(m.in(i, 2), r, in, cuda.BF16T), cuda.M(m.in(i, 3), out, r, cuda.BF16T)
	g, err := m.loraG(op.Lin, dy, Bm)
	if err != nil {
		return err
	}
	return m.blas.Gemm(false, false, op.Lin.Scaling, g, A, 0, cuda.M(m.out[i], N, in, cuda.BF16T))
}
