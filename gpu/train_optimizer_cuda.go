//go:build t2mcuda

package gpu

import (
	"fmt"
	"time"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

var _ train.DeviceOptimizer = (*TrainBackend)(nil)

// hostOptState is the optimizer state LoadOptimizer was given before the machine existed (it is built by
// Reserve or by the first micro-batch), flat in the machine's layout once it does.
type hostOptState struct {
	values, m, v [][]float32
}

// LoadOptimizer moves the optimizer to the GPU (train.DeviceOptimizer): the LoRA values become the
// machine's fp32 masters (and their bf16 copy), opt's moments its AdamW state; Loss then reads the device's
// values and no longer uploads Params.Values. Without a machine yet, the state is uploaded when it is built.
func (b *TrainBackend) LoadOptimizer(values [][]float32, opt *train.AdamW) error {
	if len(values) != len(b.p.Values) || len(opt.M) != len(values) || len(opt.V) != len(values) {
		return fmt.Errorf("cuda backend: optimizer state for %d parameters (%d, %d moments), the backend trains %d",
			len(values), len(opt.M), len(opt.V), len(b.p.Values))
	}
	b.devOpt = &hostOptState{values: values, m: opt.M, v: opt.V}
	if b.m == nil {
		return nil
	}
	if err := b.d.Bind(); err != nil {
		return err
	}
	return b.uploadOptimizer()
}

// uploadOptimizer copies the pending optimizer state into the machine (which must exist).
func (b *TrainBackend) uploadOptimizer() error {
	s := b.devOpt
	n := len(b.flat)
	mom, vel := make([]float32, n), make([]float32, n)
	scatterFlat(b.flat, s.values, b.offs, true)
	scatterFlat(mom, s.m, b.offs, true)
	scatterFlat(vel, s.v, b.offs, true)
	if err := b.m.SetLoRA(b.flat, b.bf); err != nil {
		return fmt.Errorf("cuda backend: %w", err)
	}
	if err := b.m.SetOptimizerState(mom, vel); err != nil {
		return fmt.Errorf("cuda backend: %w", err)
	}
	b.uploaded = true
	return nil
}

// ZeroGrads clears the machine's gradient sum.
func (b *TrainBackend) ZeroGrads() error {
	if err := b.ready(); err != nil {
		return err
	}
	if b.m == nil {
		return nil // built by the first AccumulateLoss, with a cleared sum
	}
	return b.m.ZeroGradSum()
}

// AccumulateLoss runs one micro-batch with gradients and adds them into the machine's gradient sum.
func (b *TrainBackend) AccumulateLoss(mb model.Batch, batch, seq int, dropoutStep uint64) (float32, error) {
	if err := b.ready(); err != nil {
		return 0, err
	}
	l, err := b.run(mb, batch, seq, dropoutStep, false)
	if err != nil {
		return 0, err
	}
	t := time.Now()
	if err := b.m.AddGradsToSum(); err != nil {
		return 0, fmt.Errorf("cuda backend: %w", err)
	}
	b.Time.Run += time.Since(t)
	return l, nil
}

// AllReduceGrads sums the gradient sum and extra over c's ranks: on the device through NCCL, or, with
// another Collective (an in-process group in tests), through the host.
func (b *TrainBackend) AllReduceGrads(c train.Collective, extra []float32) error {
	if err := b.ready(); err != nil {
		return err
	}
	if b.m == nil {
		return fmt.Errorf("cuda backend: all-reduce before any micro-batch")
	}
	sum, err := b.m.GradSum()
	if err != nil {
		return fmt.Errorf("cuda backend: %w", err)
	}
	if nc, ok := c.(*NCCLCollective); ok {
		return nc.AllReduceDevice(b.d, sum, len(b.gflat), extra)
	}
	if err := cuda.Download(b.d, b.gflat, sum); err != nil {
		return fmt.Errorf("cuda backend: the gradient sum: %w", err)
	}
	if err := c.AllReduceSum([][]float32{b.gflat, extra}); err != nil {
		return err
	}
	return cuda.Upload(b.d, sum, b.gflat)
}

// Step clips the gradient sum and applies AdamW step opt.Step on the device; it downloads only the norm.
func (b *TrainBackend) Step(opt *train.AdamW, lr, maxNorm float64) (float64, error) {
	if err := b.ready(); err != nil {
		return 0, err
	}
	if b.m == nil {
		return 0, fmt.Errorf("cuda backend: optimizer step before any micro-batch")
	}
	h := ops.AdamWHyper{LR: lr, Beta1: opt.Beta1, Beta2: opt.Beta2, Eps: opt.Eps, WeightDecay: opt.WeightDecay}
	if err := b.m.StepSum(opt.Step, h, float32(maxNorm)); err != nil {
		return 0, fmt.Errorf("cuda backend: %w", err)
	}
	norm, _, err := b.m.GradNorm()
	if err != nil {
		return 0, fmt.Errorf("cuda backend: %w", err)
	}
	return float64(norm), nil
}

// StoreOptimizer downloads the fp32 masters into values and the moments into opt.M and opt.V.
func (b *TrainBackend) StoreOptimizer(values [][]float32, opt *train.AdamW) error {
	if err := b.ready(); err != nil {
		return err
	}
	if b.m == nil {
		return nil // nothing ran: the host's values are the device's
	}
	n := len(b.flat)
	mom, vel := make([]float32, n), make([]float32, n)
	if err := b.m.OptimizerState(b.flat, mom, vel); err != nil {
		return fmt.Errorf("cuda backend: %w", err)
	}
	scatterFlat(b.flat, values, b.offs, false)
	scatterFlat(mom, opt.M, b.offs, false)
	scatterFlat(vel, opt.V, b.offs, false)
	return nil
}

// ready binds the device for a DeviceOptimizer call and checks that LoadOptimizer came first.
func (b *TrainBackend) ready() error {
	if b.devOpt == nil {
		return fmt.Errorf("cuda backend: the optimizer is on the host (LoadOptimizer first)")
	}
	return b.d.Bind()
}

// scatterFlat copies between the flat layout and per-matrix slices: into flat (toFlat) or out of it.
func scatterFlat(flat []float32, mats [][]float32, offs []int, toFlat bool) {
	for i, v := range mats {
		if toFlat {
			copy(flat[offs[i]:offs[i]+len(v)], v)
		} else {
			copy(v, flat[offs[i]:offs[i]+len(v)])
		}
	}
}
