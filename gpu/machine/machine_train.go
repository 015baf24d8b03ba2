//go:build t2mcuda

package machine

import (
	"fmt"
	"time"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// RunOptions change one Run of a machine.
type RunOptions struct {
	// Rows and Seq are the batch's shape [Rows, Seq] (0: the graph's B, T); at most the graph's. The Run
	// computes on that shape only: every kernel and GEMM covers Rows·Seq rows, so a micro-batch shorter
	// than the graph costs its own tokens. Loss, gradients and dropout masks (drawn by flat index in the
	// [Rows·Seq, C] layout; on the head rows, in model.HeadRows' layout of that shape) are those of the CPU on
	// the same [Rows, Seq] batch.
	Rows, Seq int
	// Eval runs only what the graph's output depends on (no backward, no gradients) with dropout off
	// (model.eval()); the fused lm_head + cross-entropy still writes its unused dh.
	Eval bool
}

// Run binds a batch of the graph's shape and executes the graph; the outputs stay on the device (Output
// downloads them).
func (m *Machine) Run(b model.Batch) error { return m.RunWith(b, RunOptions{}) }

// RunWith is Run with options, among them a shape smaller than the graph's. Dropout masks are seeded by
// the graph's DropoutState (g.SetStep).
func (m *Machine) RunWith(b model.Batch, o RunOptions) error {
	if o.Rows == 0 {
		o.Rows = m.g.Batch
	}
	if o.Seq == 0 {
		o.Seq = m.g.Seq
	}
	if o.Rows < 0 || o.Rows > m.g.Batch || o.Seq < 0 || o.Seq > m.g.Seq {
		return fmt.Errorf("gpu: machine: batch [%d, %d] outside the graph's [%d, %d]", o.Rows, o.Seq, m.g.Batch, m.g.Seq)
	}
	B, T, N := o.Rows, o.Seq, o.Rows*o.Seq
	if len(b.IDs) != N {
		return fmt.Errorf("gpu: machine: batch has %d token ids, its shape [%d, %d] takes %d", len(b.IDs), B, T, N)
	}
	m.run, m.rB, m.rT, m.rN = o, B, T, N
	m.ropeFor = nil // this Run's positions
	mask, pos := b.Mask, b.Positions
	if mask == nil {
		mask = make([]int32, N)
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
		if len(u.v) != N {
			return fmt.Errorf("gpu: machine: batch has %d values for %s, want %d", len(u.v), u.node.Name(), N)
		}
		if err := cuda.Upload(m.d, m.out[m.index[u.node]], u.v); err != nil {
			return fmt.Errorf("gpu: machine: %s: %w", u.node.Name(), err)
		}
	}
	if err := m.setHeadRows(b.Labels); err != nil {
		return err
	}
	if m.g.Loss != nil {
		m.setLossTargets(b.Labels)
		m.numItems = b.NumItems
		if m.numItems <= 0 { // this micro-batch alone
			m.numItems = float32(m.lossTargets)
		}
	}
	launched := time.Now()
	for i, node := range m.order {
		if _, folded := m.sumFold[node]; node.Op() == nil || (m.alias[i] != i && !folded) || isSeed(node) ||
			m.foldSkip[node] {
			continue // inputs, views, the seed, and a folded sum's term (its sum runs it); a folded sum still runs
		}
		if o.Eval {
			_, isLoss := node.Op().(*model.LMHeadCrossEntropyOp)
			if !m.fwd[i] || (isFusedCE(node) && !isLoss) {
				continue
			}
		} else if isFusedCE(node) && !m.fusedAt[i] {
			continue
		}
		var err error
		if m.prof != nil { // opKind formats a string per launch: only when profiling
			err = m.timed(m.profileKind(node), func() error { return m.launch(i, node) })
		} else {
			err = m.launch(i, node)
		}
		if err != nil {
			return fmt.Errorf("gpu: machine: node %d %s (%v): %w", i, node.Name(), node.Op(), err)
		}
	}
	waited := time.Now()
	if err := m.d.Sync(); err != nil {
		return err
	}
	m.hostLaunch, m.hostWait = waited.Sub(launched), time.Since(waited)
	return m.collect()
}

// HostTimes splits the last Run's wall time after its inputs were uploaded: launching its kernels and GEMMs
// (the host's work), and then waiting for the device to finish them. A wait near zero means the host, not
// the GPU, sets the pace.
func (m *Machine) HostTimes() (launch, wait time.Duration) { return m.hostLaunch, m.hostWait }

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

// dropout runs a DropoutOp node (forward, or its backward twin on dy): the CPU's mask over the Run's
// [rB·rT, C] layout (dropoutDims: the leading rows of it on the head rows); in an evaluation Run a copy.
func (m *Machine) dropout(i int, node *G.Node, op *model.DropoutOp) error {
	dims := m.dropoutDims(i, node.Shape()[1])
	p := op.P
	if m.run.Eval {
		p = 0
	}
	return ops.Dropout(m.d, m.out[i], m.in(i, 0), dims, p, op.Seed())
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
