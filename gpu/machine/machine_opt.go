//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// flatSlice is one LoRA matrix's place in the flat buffers: elements [off, off+n).
type flatSlice struct{ off, n int64 }

// machineOpt holds a training graph's LoRA parameters flat, so that the global grad norm and AdamW are
// one launch each: fp32 masters, their bf16 copy (what the forward reads: the LoRA input nodes' buffers
// are slices of it), the gradients (the LoRA gradient nodes write their slices), their sum over an
// update's micro-batches (sum), and AdamW's moments.
type machineOpt struct {
	n                    int64
	master, g, sum, m, v cuda.Buffer // [n] fp32
	bf                   cuda.Buffer // [n] bf16
	gnorm, gscratch      cuda.Buffer // [2] fp32: ‖g‖ and the clip factor; partial sums
	param                map[*G.Node]flatSlice
	grad                 map[*G.Node]flatSlice
	step                 int
}

// newOpt lays out the flat LoRA buffers of a training graph (one with a loss and LoRA gradients).
func (m *Machine) newOpt() error {
	if m.g.Loss == nil || len(m.g.LoRA) == 0 || m.g.LoRA[0].GradA == nil {
		return nil
	}
	o := &machineOpt{param: map[*G.Node]flatSlice{}, grad: map[*G.Node]flatSlice{}}
	for _, l := range m.g.LoRA {
		for _, pg := range [][2]*G.Node{{l.A, l.GradA}, {l.B, l.GradB}} {
			if _, ok := pg[1].Op().(*model.LoRAGradOp); !ok {
				return fmt.Errorf("gpu: machine: the gradient of %s is %v, not a LoRA gradient op", pg[0].Name(), pg[1].Op())
			}
			s := flatSlice{off: o.n, n: int64(pg[0].Shape().TotalSize())}
			o.param[pg[0]], o.grad[pg[1]] = s, s
			o.n += s.n
		}
	}
	var err error
	for _, b := range []*cuda.Buffer{&o.master, &o.g, &o.sum, &o.m, &o.v} {
		if *b, err = m.alloc(o.n*4, "LoRA fp32"); err != nil {
			return err
		}
	}
	if o.bf, err = m.alloc(o.n*2, "LoRA bf16"); err != nil {
		return err
	}
	if o.gnorm, err = m.alloc(8, "grad norm"); err != nil {
		return err
	}
	if o.gscratch, err = m.alloc(ops.GradNormScratchBytes(), "grad norm scratch"); err != nil {
		return err
	}
	master := make([]float32, o.n)
	for node, s := range o.param {
		v, err := model.Values(node)
		if err != nil {
			return fmt.Errorf("gpu: machine: LoRA %s: %w", node.Name(), err)
		}
		copy(master[s.off:s.off+s.n], v)
	}
	bf := make([]uint16, o.n)
	for i, x := range master {
		bf[i] = cuda.BF16(x)
	}
	if err := cuda.Upload(m.d, o.master, master); err != nil {
		return err
	}
	if err := cuda.Upload(m.d, o.bf, bf); err != nil {
		return err
	}
	for _, b := range []cuda.Buffer{o.sum, o.m, o.v} {
		if err := m.d.Memset(b, 0); err != nil {
			return err
		}
	}
	m.opt = o
	return nil
}

// Step applies the optimizer to the gradients of the last Run: the global L2 norm of all LoRA gradients
// (out[0]) and torch's clip factor min(1, maxNorm/(norm+1e-6)) (maxNorm ≤ 0: no clipping), then AdamW
// on the fp32 masters, writing their bf16 copies that the next Run reads. No host round trip. It counts
// its own steps (1, 2, ...); StepSum is the training loop's form.
func (m *Machine) Step(h ops.AdamWHyper, maxNorm float32) error {
	if m.opt == nil {
		return errNoOpt("Step")
	}
	m.opt.step++
	return m.step(m.opt.g, m.opt.step, h, maxNorm)
}

// StepSum is Step on the gradient sum (ZeroGradSum, AddGradsToSum) as optimizer step t (1-based: the
// caller's count, so that a resumed run continues it).
func (m *Machine) StepSum(t int, h ops.AdamWHyper, maxNorm float32) error {
	if m.opt == nil {
		return errNoOpt("StepSum")
	}
	return m.step(m.opt.sum, t, h, maxNorm)
}

func (m *Machine) step(g cuda.Buffer, t int, h ops.AdamWHyper, maxNorm float32) error {
	o := m.opt
	if err := ops.GradNormClip(m.d, o.gnorm, g, o.gscratch, int(o.n), maxNorm); err != nil {
		return err
	}
	return ops.AdamWStep(m.d, o.master, o.m, o.v, g, o.bf, o.gnorm.Slice(4, 4), int(o.n), t, h)
}

func errNoOpt(what string) error {
	return fmt.Errorf("gpu: machine: %s on a graph without a loss and LoRA gradients (BuildGrad first)", what)
}

// ZeroGradSum clears the gradient sum: the start of an update.
func (m *Machine) ZeroGradSum() error {
	if m.opt == nil {
		return errNoOpt("ZeroGradSum")
	}
	return m.d.Memset(m.opt.sum, 0)
}

// AddGradsToSum adds the gradients of the last (training) Run into the sum, in fp32: sum = sum + g, the
// host's grads[i] += g of the same micro-batch, so the sum over an update has the host's bits.
func (m *Machine) AddGradsToSum() error {
	if m.opt == nil {
		return errNoOpt("AddGradsToSum")
	}
	return ops.AddF32(m.d, m.opt.sum, m.opt.sum, m.opt.g, int(m.opt.n))
}

// GradSum is the device buffer of the gradient sum [LoRAParamCount] fp32 (for an all-reduce over the
// ranks of a data-parallel run, between AddGradsToSum and StepSum).
func (m *Machine) GradSum() (cuda.Buffer, error) {
	if m.opt == nil {
		return cuda.Buffer{}, errNoOpt("GradSum")
	}
	return m.opt.sum, nil
}

// SetOptimizerState uploads AdamW's moments, flat in LoRAOffset's layout (the start of a run: zeros; a
// resumed run: the checkpoint's).
func (m *Machine) SetOptimizerState(mom, vel []float32) error {
	if m.opt == nil || int64(len(mom)) != m.opt.n || len(vel) != len(mom) {
		return fmt.Errorf("gpu: machine: optimizer state of %d and %d values, the machine has %d", len(mom), len(vel), m.LoRAParamCount())
	}
	if err := cuda.Upload(m.d, m.opt.m, mom); err != nil {
		return fmt.Errorf("gpu: machine: AdamW's first moments: %w", err)
	}
	if err := cuda.Upload(m.d, m.opt.v, vel); err != nil {
		return fmt.Errorf("gpu: machine: AdamW's second moments: %w", err)
	}
	return nil
}

// OptimizerState downloads the fp32 masters and AdamW's moments, flat in LoRAOffset's layout.
func (m *Machine) OptimizerState(master, mom, vel []float32) error {
	if m.opt == nil || int64(len(master)) != m.opt.n || len(mom) != len(master) || len(vel) != len(master) {
		return fmt.Errorf("gpu: machine: optimizer state into %d, %d and %d values, the machine has %d", len(master), len(mom), len(vel), m.LoRAParamCount())
	}
	for _, x := range []struct {
		dst  []float32
		src  cuda.Buffer
		what string
	}{{master, m.opt.master, "LoRA masters"}, {mom, m.opt.m, "AdamW's first moments"}, {vel, m.opt.v, "AdamW's second moments"}} {
		if err := cuda.Download(m.d, x.dst, x.src); err != nil {
			return fmt.Errorf("gpu: machine: %s: %w", x.what, err)
		}
	}
	return nil
}

// GradNorm downloads the global gradient norm and clip factor of the last Step.
func (m *Machine) GradNorm() (norm, clip float32, err error) {
	if m.opt == nil {
		return 0, 0, fmt.Errorf("gpu: machine: no optimizer state")
	}
	var v [2]float32
	err = cuda.Download(m.d, v[:], m.opt.gnorm)
	return v[0], v[1], err
}

// LoRAMasters downloads a LoRA matrix's fp32 master values (node is one of the graph's LoRA A or B).
func (m *Machine) LoRAMasters(node *G.Node) ([]float32, error) {
	if m.opt == nil {
		return nil, fmt.Errorf("gpu: machine: no optimizer state")
	}
	s, ok := m.opt.param[node]
	if !ok {
		return nil, fmt.Errorf("gpu: machine: %s is not a LoRA parameter", node.Name())
	}
	v := make([]float32, s.n)
	return v, cuda.Download(m.d, v, m.opt.master.Slice(s.off*4, s.n*4))
}
