//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// RunOptions change one Run of a machine.
type RunOptions struct {
	// Seq is the length of the micro-batch as the CPU would run it (0: the graph's). A batch padded on the
	// right from [B, Seq] to the graph's [B, T] gives the same loss and gradients, but dropout masks are
	// drawn by flat index, so they follow the logical [B·Seq, C] layout to stay the CPU's masks.
	Seq int
	// Eval runs only what the graph's output depends on (no backward, no gradients) with dropout off
	// (model.eval()); the fused lm_head + cross-entropy still writes its unused dh.
	Eval bool
}

// Run binds a batch and executes the graph; the outputs stay on the device (Output downloads them).
func (m *Machine) Run(b model.Batch) error { return m.RunWith(b, RunOptions{}) }

// RunWith is Run with options. Dropout masks are seeded by the graph's DropoutState (g.SetStep).
func (m *Machine) RunWith(b model.Batch, o RunOptions) error {
	B, T := m.g.Batch, m.g.Seq
	if o.Seq == 0 {
		o.Seq = T
	}
	if o.Seq < 0 || o.Seq > T {
		return fmt.Errorf("gpu: machine: logical length %d outside the graph's 1..%d", o.Seq, T)
	}
	if len(b.IDs) != m.N {
		return fmt.Errorf("gpu: machine: batch has %d token ids, the graph takes %d×%d", len(b.IDs), B, T)
	}
	m.run = o
	mask, pos := b.Mask, b.Positions
	if mask == nil {
		mask = make([]int32, m.N)
		for k := range mask {
			mask[k] = 1
		}
	}
	if pos == nil {
		pos = model.PositionsArange(B, T)
	}
	for _, u := range []struct {
		node *G.Node
		v    []int32
	}{{m.g.IDs, b.IDs}, {m.g.Positions, pos}, {m.g.Mask, mask}, {m.g.Labels, b.Labels}} {
		if u.node == nil {
			continue
		}
		if len(u.v) != m.N {
			return fmt.Errorf("gpu: machine: batch has %d values for %s, want %d", len(u.v), u.node.Name(), m.N)
		}
		if err := cuda.Upload(m.d, m.out[m.index[u.node]], u.v); err != nil {
			return fmt.Errorf("gpu: machine: %s: %w", u.node.Name(), err)
		}
	}
	if m.g.Loss != nil {
		m.setLossRows(b.Labels)
		m.numItems = b.NumItems
		if m.numItems <= 0 {
			m.numItems = float32(model.CountCompletionTokens(b.Labels, B, T))
		}
	}
	for i, node := range m.order {
		if node.Op() == nil || m.alias[i] != i || isSeed(node) {
			continue
		}
		if o.Eval {
			_, isLoss := node.Op().(*model.LMHeadCrossEntropyOp)
			if !m.fwd[i] || (isFusedCE(node) && !isLoss) {
				continue
			}
		} else if isFusedCE(node) && !m.fusedAt[i] {
			continue
		}
		if err := m.launch(i, node); err != nil {
			return fmt.Errorf("gpu: machine: node %d %s (%v): %w", i, node.Name(), node.Op(), err)
		}
	}
	return m.d.Sync()
}

// markForward marks the nodes the graph's output (the loss, else the logits) depends on.
func (m *Machine) markForward() {
	m.fwd = make([]bool, len(m.order))
	out := m.g.Loss
	if out == nil {
		out = m.g.Logits
	}
	i, ok := m.index[out]
	if !ok {
		return
	}
	stack := []int{i}
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if m.fwd[j] {
			continue
		}
		m.fwd[j] = true
		stack = append(stack, m.args[j]...)
	}
}

// dropout runs a DropoutOp node (forward, or its backward twin on dy): the CPU's mask over the logical
// [B·Seq, C] layout; in an evaluation Run a copy.
func (m *Machine) dropout(i int, node *G.Node, op *model.DropoutOp) error {
	dims := ops.DropoutDims{B: m.g.Batch, Tp: m.g.Seq, Tl: m.run.Seq, C: node.Shape()[1]}
	p := op.P
	if m.run.Eval {
		p = 0
	}
	return ops.Dropout(m.d, m.out[i], m.in(i, 0), dims, p, op.Seed())
}

// loraInputGrad runs LoRAGradOp 'X' (LoRA dropout's branch): dxl = s·(dy·B)·A [N, in] bf16.
func (m *Machine) loraInputGrad(i int, op *model.LoRAGradOp) error {
	N, r, in, out := m.N, op.Lin.Rank, op.Lin.Weight.In, op.Lin.Weight.Out
	dy := cuda.M(m.in(i, 1), N, out, cuda.BF16T)
	A, Bm := cuda.M(m.in(i, 2), r, in, cuda.BF16T), cuda.M(m.in(i, 3), out, r, cuda.BF16T)
	dh := cuda.M(m.tmp, N, r, cuda.BF16T)
	if err := m.blas.Gemm(false, false, op.Lin.Scaling, dy, Bm, 0, dh); err != nil {
		return err
	}
	return m.blas.Gemm(false, false, 1, dh, A, 0, cuda.M(m.out[i], N, in, cuda.BF16T))
}

// LoRAParamCount is the number of trainable LoRA values of a training machine (0 without one).
func (m *Machine) LoRAParamCount() int {
	if m.opt == nil {
		return 0
	}
	return int(m.opt.n)
}

// LoRAOffset is where a LoRA A or B input node's values start in the flat parameters and gradients.
func (m *Machine) LoRAOffset(node *G.Node) (int, error) {
	if m.opt == nil {
		return 0, fmt.Errorf("gpu: machine: no LoRA parameters (not a training graph)")
	}
	s, ok := m.opt.param[node]
	if !ok {
		return 0, fmt.Errorf("gpu: machine: %s is not a LoRA parameter", node.Name())
	}
	return int(s.off), nil
}

// SetLoRA replaces all LoRA parameters with flat host values (fp32 masters and the bf16 copy the forward
// reads), in LoRAOffset's layout: how a host-side optimizer hands its update to the next Run. bf is a
// caller-kept scratch of the same length, so repeated calls allocate nothing.
func (m *Machine) SetLoRA(flat []float32, bf []uint16) error {
	if m.opt == nil || int64(len(flat)) != m.opt.n || len(bf) != len(flat) {
		return fmt.Errorf("gpu: machine: SetLoRA with %d values (and %d bf16), the machine has %d", len(flat), len(bf),
			m.LoRAParamCount())
	}
	cuda.RoundBF16(bf, flat)
	if err := cuda.Upload(m.d, m.opt.master, flat); err != nil {
		return fmt.Errorf("gpu: machine: LoRA masters: %w", err)
	}
	if err := cuda.Upload(m.d, m.opt.bf, bf); err != nil {
		return fmt.Errorf("gpu: machine: LoRA bf16: %w", err)
	}
	return nil
}

// LoRAGrads downloads the flat LoRA gradients of the last (training) Run into dst, in LoRAOffset's layout.
func (m *Machine) LoRAGrads(dst []float32) error {
	if m.opt == nil || int64(len(dst)) != m.opt.n {
		return fmt.Errorf("gpu: machine: LoRAGrads into %d values, the machine has %d", len(dst), m.LoRAParamCount())
	}
	if err := cuda.Download(m.d, dst, m.opt.g); err != nil {
		return fmt.Errorf("gpu: machine: LoRA gradients: %w", err)
	}
	return nil
}
