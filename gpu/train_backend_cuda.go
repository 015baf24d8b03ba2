//go:build t2mcuda

package gpu

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/machine"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
	G "gorgonia.org/gorgonia"
)

// TrainBackend is train.Backend on the GPU machine: one training graph (model.Build in
// model.TrainingLossMode + BuildGrad, LoRA dropout as in p.LoRA) compiled once for the largest micro-batch
// [B, T] (Reserve), every micro-batch run at its own shape [rows, seq] on the same buffers (no padding to T:
// a short batch costs its own tokens), the frozen weights on the device once. It is also a
// train.DeviceOptimizer (train_optimizer_cuda.go): the training loop keeps the gradient sums, clipping and
// AdamW on the device. With the optimizer on the host instead (Run.HostOptimizer), each Loss uploads the LoRA
// values the host changed and adds the downloaded gradients into the loop's. An evaluation (grads nil) runs the same machine forward only, dropout off.
type TrainBackend struct {
	w      *model.Weights
	p      *train.Params
	d      *cuda.Device
	g      *model.Graph
	m      *machine.Machine
	B, T   int   // the machine's shape
	recomp bool  // activation recomputation (SetRecompute)
	cache  int64 // bytes of bf16 NF4 weight copies the machine may keep (SetWeightCache)

	offs     []int         // per Params.Values entry: its offset in the machine's flat LoRA layout
	flat     []float32     // [n] LoRA values as last uploaded, flat
	uploaded bool          // flat is on the device
	bf       []uint16      // [n] their bf16 copy
	gflat    []float32     // [n] downloaded gradients
	devOpt   *hostOptState // set by LoadOptimizer: the optimizer runs on the device
	Time     BackendTime   // where the time of the Loss calls went
}

// BackendTime sums the wall time of TrainBackend.Loss by part (host clock, synchronized device).
type BackendTime struct {
	Calls                 int
	Upload, Run, Download time.Duration // LoRA values to the device; the graph (+ batch upload); loss and gradients back, added up
}

// NewTrainBackend opens GPU 0 for training w's LoRA parameters p (the factory registered as "cuda").
// The machine is built by Reserve, or by the first Loss at that call's shape.
func NewTrainBackend(w *model.Weights, p *train.Params) (train.Backend, error) {
	d, err := cuda.Open(ordinal())
	if err != nil {
		return nil, err
	}
	return &TrainBackend{w: w, p: p, d: d}, nil
}

// Name says where the backend runs.
func (b *TrainBackend) Name() string { return "cuda: " + b.d.Name }

// Reserve builds the machine for micro-batches of at most batch rows of seq tokens (train.ShapeReserver);
// it must come before the first Loss, or that call's shape is the machine's.
func (b *TrainBackend) Reserve(batch, seq int) error {
	if b.m != nil {
		return fmt.Errorf("cuda backend: the machine is already built for [%d, %d]", b.B, b.T)
	}
	if err := b.d.Bind(); err != nil {
		return err
	}
	// Head rows unless T2M_HEAD_ROWS=0, as the CPU backend: the same layout, so the same dropout masks.
	g, err := model.Build(b.w, b.p.LoRA, batch, seq, model.TrainingLossMode())
	if err != nil {
		return fmt.Errorf("cuda backend: graph [%d, %d]: %w", batch, seq, err)
	}
	if err := g.BuildGrad(); err != nil {
		g.Close()
		return fmt.Errorf("cuda backend: backward graph: %w", err)
	}
	_, total, err := b.d.MemInfo()
	if err != nil {
		g.Close()
		return err
	}
	// total: address space; memory is mapped as the plan needs it.
	m, err := machine.NewWithOptions(b.d, g, total, machine.Options{Recompute: b.recomp, WeightCacheBytes: b.cache})
	if err != nil {
		g.Close()
		hint := "lower --batch-size or --max-len (raise --grad-accum to keep the effective batch)"
		if !b.recomp {
			hint += ", or add --gradient-checkpointing"
		}
		return fmt.Errorf("cuda backend: machine for micro-batches of %d × %d tokens: %w; %s", batch, seq, err, hint)
	}
	index := map[string]int{}
	for i, mod := range b.p.Modules {
		index[mod] = i
	}
	offs := make([]int, len(b.p.Values))
	seen := 0
	for _, l := range g.LoRA {
		i, ok := index[l.Module]
		if !ok {
			m.Close()
			g.Close()
			return fmt.Errorf("cuda backend: graph has LoRA on %s, which is not a trained parameter", l.Module)
		}
		for k, node := range []*G.Node{l.A, l.B} {
			off, err := m.LoRAOffset(node)
			if err != nil {
				m.Close()
				g.Close()
				return fmt.Errorf("cuda backend: %w", err)
			}
			offs[2*i+k] = off
			seen++
		}
	}
	if n := m.LoRAParamCount(); seen != len(b.p.Values) || n != sum(b.p.Sizes()) {
		m.Close()
		g.Close()
		return fmt.Errorf("cuda backend: the machine holds %d LoRA matrices (%d values), the parameters %d (%d)",
			seen, n, len(b.p.Values), sum(b.p.Sizes()))
	}
	n := m.LoRAParamCount()
	b.g, b.m, b.B, b.T, b.offs = g, m, batch, seq, offs
	b.flat, b.bf, b.gflat = make([]float32, n), make([]uint16, n), make([]float32, n)
	return nil
}

// SetRecompute turns activation recomputation (gradient checkpointing) on or off for the machine Reserve
// builds (train.Recomputer): each layer's activations are computed again in the backward instead of kept.
func (b *TrainBackend) SetRecompute(on bool) error {
	if b.m != nil {
		return fmt.Errorf("cuda backend: recomputation must be chosen before the machine is built")
	}
	b.recomp = on
	return nil
}

// SetWeightCache bounds the bf16 copies of NF4 weights the machine Reserve builds keeps on the device
// (train.WeightCacher): each kept weight skips its dequantization in every forward and backward.
func (b *TrainBackend) SetWeightCache(bytes int64) error {
	if b.m != nil {
		return fmt.Errorf("cuda backend: the weight cache must be sized before the machine is built")
	}
	if bytes < 0 {
		return fmt.Errorf("cuda backend: weight cache of %d bytes", bytes)
	}
	b.cache = bytes
	return nil
}

// SetProfile turns the machine's launch timing on or off (bench.LaunchProfiler). It does nothing before
// Reserve (then Profile reports no runs).
func (b *TrainBackend) SetProfile(on bool) {
	if b.m != nil {
		b.m.SetProfile(on)
	}
}

// Profile is the machine's device milliseconds per profiled micro-batch by kind of op, and their count.
func (b *TrainBackend) Profile() (map[string]float64, int) {
	if b.m == nil {
		return nil, 0
	}
	return b.m.Profile()
}

// HostTimes is the machine's split of its last micro-batch into launching and waiting for the device
// (train.HostTimer).
func (b *TrainBackend) HostTimes() (launch, wait time.Duration) {
	if b.m == nil {
		return 0, 0
	}
	return b.m.HostTimes()
}

// Memory reports the machine's device memory by use and the GPU's used memory now (train.MemoryReporter).
func (b *TrainBackend) Memory() (train.MemoryReport, error) {
	if b.m == nil {
		return train.MemoryReport{}, fmt.Errorf("cuda backend: no machine yet (Reserve first)")
	}
	l, w, a, c := b.m.Memory()
	free, total, err := b.d.MemInfo()
	if err != nil {
		return train.MemoryReport{}, err
	}
	cb, cn := b.m.WeightCache()
	return train.MemoryReport{LoRABytes: l, WeightsBytes: w, WeightCacheBytes: cb, CachedWeights: cn, ActivationBytes: a,
		ArenaBytes: c, DeviceUsedBytes: total - free}, nil
}

func sum(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

// Loss runs one micro-batch [batch, seq] (train.Backend) at that shape, with the current LoRA values; with
// grads, dropout seeded by dropoutStep and the gradients added into grads.
func (b *TrainBackend) Loss(mb model.Batch, batch, seq int, dropoutStep uint64, grads [][]float32) (float32, error) {
	if err := b.d.Bind(); err != nil {
		return 0, err
	}
	if grads != nil && len(grads) != len(b.p.Values) {
		return 0, fmt.Errorf("cuda backend: %d gradient slices, want %d", len(grads), len(b.p.Values))
	}
	l, err := b.run(mb, batch, seq, dropoutStep, grads == nil)
	if err != nil || grads == nil {
		return l, err
	}
	t := time.Now()
	if err := b.m.LoRAGrads(b.gflat); err != nil {
		return 0, fmt.Errorf("cuda backend: %w", err)
	}
	for i, dst := range grads {
		if len(dst) != len(b.p.Values[i]) {
			return 0, fmt.Errorf("cuda backend: gradient %d has %d values, want %d", i, len(dst), len(b.p.Values[i]))
		}
	}
	addGrads(grads, b.gflat, b.offs)
	b.Time.Download += time.Since(t)
	return l, nil
}

// run executes one micro-batch (building the machine at its shape if Reserve did not) and returns its
// loss; the gradients, unless eval, stay in the machine. With the optimizer on the host, changed
// Params.Values are uploaded first; with it on the device (LoadOptimizer), the device's values are used.
func (b *TrainBackend) run(mb model.Batch, batch, seq int, dropoutStep uint64, eval bool) (float32, error) {
	if b.m == nil {
		if err := b.Reserve(batch, seq); err != nil {
			return 0, err
		}
		if b.devOpt != nil {
			if err := b.uploadOptimizer(); err != nil {
				return 0, err
			}
		}
	}
	if batch > b.B || seq > b.T || batch <= 0 || seq <= 0 {
		return 0, fmt.Errorf("cuda backend: micro-batch [%d, %d] does not fit the machine's [%d, %d] (Reserve the largest shape first)",
			batch, seq, b.B, b.T)
	}
	t0 := time.Now()
	if b.devOpt == nil && (stageLoRA(b.flat, b.p.Values, b.offs) || !b.uploaded) { // the loop updated them: upload
		if err := b.m.SetLoRA(b.flat, b.bf); err != nil {
			return 0, fmt.Errorf("cuda backend: %w", err)
		}
		b.uploaded = true
	}
	t1 := time.Now()
	b.g.SetStep(dropoutStep)
	if err := b.m.RunWith(mb, machine.RunOptions{Rows: batch, Seq: seq, Eval: eval}); err != nil {
		return 0, fmt.Errorf("cuda backend: %w", err)
	}
	t2 := time.Now()
	lv, err := b.m.Output(b.g.Loss)
	if err != nil {
		return 0, fmt.Errorf("cuda backend: reading the loss: %w", err)
	}
	b.Time.Calls++
	b.Time.Upload += t1.Sub(t0)
	b.Time.Run += t2.Sub(t1)
	b.Time.Download += time.Since(t2)
	return lv[0], nil
}

// Close frees the machine, the graph and the device.
func (b *TrainBackend) Close() error {
	var err error
	if b.m != nil {
		err = b.m.Close()
		b.g.Close()
		b.m, b.g = nil, nil
	}
	if cerr := b.d.Close(); err == nil {
		err = cerr
	}
	return err
}

// stageLoRA copies the parameter matrices that changed into their places in flat (the values last
// uploaded) and reports whether any did. Comparing bits (−0 ≠ +0) with memcmp, in parallel over matrices,
// costs less than the conversion and copies of an upload that every micro-batch of an accumulation window
// after the first would repeat for nothing.
func stageLoRA(flat []float32, values [][]float32, offs []int) bool {
	var changed atomic.Bool
	var wg sync.WaitGroup
	for i, v := range values {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := flat[offs[i] : offs[i]+len(v)]
			if !bytes.Equal(f32bytes(dst), f32bytes(v)) {
				copy(dst, v)
				changed.Store(true)
			}
		}()
	}
	wg.Wait()
	return changed.Load()
}

// addGrads adds the flat gradients into the loop's per-matrix ones, in parallel over matrices.
func addGrads(grads [][]float32, gflat []float32, offs []int) {
	var wg sync.WaitGroup
	for i, dst := range grads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, x := range gflat[offs[i] : offs[i]+len(dst)] {
				dst[j] += x
			}
		}()
	}
	wg.Wait()
}

// f32bytes views float32 values as their bytes.
func f32bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
