//go:build t2mcuda

package gpu

import (
	"fmt"
	"io"
)

func init() { register(cudaBackend{}, NewTrainBackend) }

// cudaBackend is the Backend of the cuda build.
type cudaBackend struct{}

// Describe opens GPU 0 and names it.
func (cudaBackend) Describe() (string, error) {
	d, err := Open(0)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return fmt.Sprintf("%s, %d MiB, compute capability %d.%d", d.Name, d.TotalMB, d.CC[0], d.CC[1]), nil
}

// linSpec is one frozen linear of a decoder layer: W [out, in], with or without LoRA.
type linSpec struct {
	name    string
	out, in int
	lora    bool
}

// benchLinear is one linear's device state in the benchmark.
type benchLinear struct {
	spec   linSpec
	w      *NF4Weight
	a, b   Mat // LoRA A [r, in], B [out, r] bf16
	da, db Mat // their gradients, f32
	x      Mat // saved input [BT, in]
	y      Mat // output [BT, out]
	h      Mat // saved LoRA hidden x·Aᵀ [BT, r]
}

// BenchTrain runs the GEMM-level pieces of a QLoRA training step at cfg's shape (see benchStep).
func (cudaBackend) BenchTrain(cfg BenchConfig, log io.Writer) (*BenchResult, error) {
	d, err := Open(0)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	blas, err := d.BLAS()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "gpu: %s (%d MiB), %s v%d\n", d.Name, d.TotalMB, blas.Lib, blas.Version)
	if cfg.Scope == "machine" {
		return benchMachine(d, cfg, log)
	}
	free, _, err := d.MemInfo()
	if err != nil {
		return nil, err
	}
	ar, err := NewArena(d, free-(1<<30))
	if err != nil {
		return nil, err
	}
	s, err := newBenchState(d, blas, ar, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "weights ready: %.2f GiB (NF4 layers, bf16 embedding and lm_head, LoRA r=%d)\n",
		gib(ar.Peak()), cfg.Rank)
	var steps []float64
	ops := map[string][]float64{}
	step := s.step
	scope := "GEMM-level pieces of a step: NF4 dequant, frozen and LoRA GEMMs (forward, input and LoRA " +
		"gradients), lm_head over the loss tokens; no norm/rope/attention/swiglu/CE/AdamW kernels"
	if cfg.Scope == "full" {
		step = s.stepFull
		scope = "full step: forward, backward, grad-norm clip, AdamW (q/k/v biases and LoRA dropout not yet)"
		if s.pipe != nil {
			scope += "; NF4 dequant one weight ahead on a second stream"
		}
	}
	for i := 0; i < cfg.Warmup+cfg.Steps; i++ {
		stepMs, opMs, err := step()
		if err != nil {
			return nil, fmt.Errorf("gpu: bench step %d: %w", i, err)
		}
		if cfg.Scope == "full" {
			fmt.Fprintf(log, "step %d: %.1f ms  loss %.4f  grad norm %.4g\n", i, stepMs, s.full.lastLoss,
				s.full.lastNorm)
		} else {
			fmt.Fprintf(log, "step %d: %.1f ms\n", i, stepMs)
		}
		if i < cfg.Warmup {
			continue
		}
		steps = append(steps, stepMs)
		for k, v := range opMs {
			ops[k] = append(ops[k], v)
		}
	}
	r := &BenchResult{GPU: d.Name, OpsMs: map[string]float64{}, Scope: scope}
	r.StepMs = median(steps)
	for k, v := range ops {
		r.OpsMs[k] = median(v)
	}
	tokens := float64(cfg.Batch * cfg.Seq)
	r.TokPerSec = tokens / (r.StepMs / 1000)
	r.PeakGiB = gib(ar.Peak() + blas.ws.Bytes)
	r.TFLOPs = s.flops / (r.StepMs / 1000) / 1e12
	return r, nil
}

// benchState holds the benchmark model and activations.
type benchState struct {
	d       *Device
	blas    *BLAS
	ar      *Arena
	cfg     BenchConfig
	layers  [][]*benchLinear
	scratch Buffer // dequantized bf16 weight, the largest linear
	embed   Mat    // [V, H] bf16 (lm_head's shape; the embedding's gather is not timed)
	lmHead  Mat    // [V, H] bf16
	flops   float64
	saved   int64 // arena mark after the weights

	// LoRA parameters of all layers, flat, so that grad-norm and AdamW are one launch each; the Mats of
	// benchLinear are views into these.
	loraN                      int    // parameters
	loraP, loraG, loraM, loraV Buffer // [loraN] fp32: masters, gradients, AdamW moments
	loraBF                     Buffer // [loraN] bf16: the copy GEMMs read
	full                       *fullState
	pipe                       *weightPipe // non-nil with cfg.Overlap: dequant one weight ahead on a second stream
}

// allocLoRA takes the flat LoRA buffers and carves A [r, in], B [out, r] (bf16) and dA, dB (f32) of each
// LoRA linear from them. A is random (kaiming-like scale), B too (PEFT starts B at zero; random keeps the
// benchmark's data non-zero).
func (s *benchState) allocLoRA() error {
	r := s.cfg.Rank
	for _, lins := range s.layers {
		for _, l := range lins {
			if l.spec.lora {
				s.loraN += r * (l.spec.in + l.spec.out)
			}
		}
	}
	var err error
	for _, b := range []*Buffer{&s.loraP, &s.loraG, &s.loraM, &s.loraV} {
		if *b, err = s.ar.Alloc(int64(s.loraN)*4, "LoRA fp32"); err != nil {
			return err
		}
	}
	if s.loraBF, err = s.ar.Alloc(int64(s.loraN)*2, "LoRA bf16"); err != nil {
		return err
	}
	if err := s.d.FillRandomBF16(s.loraBF, int64(s.loraN), 4242, 0.02); err != nil {
		return err
	}
	// fp32 masters: random bf16 pairs read as fp32 (small, finite); AdamW moments start at zero as in torch.
	if err := s.d.FillRandomBF16(s.loraP, s.loraP.Bytes/2, 4343, 0.01); err != nil {
		return err
	}
	for _, b := range []Buffer{s.loraM, s.loraV} {
		if err := s.d.Memset(b, 0); err != nil {
			return err
		}
	}
	off := int64(0)
	take := func(rows, cols int) (Mat, Mat) {
		n := int64(rows * cols)
		bf := M(s.loraBF.Slice(off*2, n*2), rows, cols, BF16T)
		g := M(s.loraG.Slice(off*4, n*4), rows, cols, F32T)
		off += n
		return bf, g
	}
	for _, lins := range s.layers {
		for _, l := range lins {
			if l.spec.lora {
				l.a, l.da = take(r, l.spec.in)
				l.b, l.db = take(l.spec.out, r)
			}
		}
	}
	return nil
}

func newBenchState(d *Device, blas *BLAS, ar *Arena, cfg BenchConfig) (*benchState, error) {
	s := &benchState{d: d, blas: blas, ar: ar, cfg: cfg}
	H, I, KV := cfg.Hidden, cfg.Intermediate, cfg.KVHeads*cfg.HeadDim
	specs := []linSpec{{"q", H, H, true}, {"k", KV, H, true}, {"v", KV, H, true}, {"o", H, H, true},
		{"gate", I, H, true}, {"up", I, H, true}, {"down", H, I, false}}
	src := newNF4Source(d)
	alloc := func(rows, cols int, t DType, what string) (Mat, error) {
		b, err := ar.Alloc(int64(rows*cols)*t.Size(), what)
		return M(b, rows, cols, t), err
	}
	maxW := 0
	for l := 0; l < cfg.Layers; l++ {
		var lins []*benchLinear
		for _, sp := range specs {
			name := fmt.Sprintf("layer %d %s", l, sp.name)
			w, err := src.weight(ar, sp.out, sp.in, name)
			if err != nil {
				return nil, err
			}
			lins = append(lins, &benchLinear{spec: sp, w: w})
			maxW = max(maxW, sp.out*sp.in)
		}
		s.layers = append(s.layers, lins)
	}
	if err := s.allocLoRA(); err != nil {
		return nil, err
	}
	var err error
	if s.embed, err = alloc(cfg.Vocab, H, BF16T, "embedding"); err != nil {
		return nil, err
	}
	if s.lmHead, err = alloc(cfg.Vocab, H, BF16T, "lm_head"); err != nil {
		return nil, err
	}
	for i, m := range []Mat{s.embed, s.lmHead} {
		if err := d.FillRandomBF16(m.Buf, int64(m.Rows*m.Cols), 1000+uint64(i), 0.05); err != nil {
			return nil, err
		}
	}
	if cfg.Overlap && cfg.Scope == "full" {
		if s.pipe, err = newWeightPipe(d, ar, maxW); err != nil {
			return nil, err
		}
	} else if s.scratch, err = ar.Alloc(int64(maxW)*2, "dequant scratch"); err != nil {
		return nil, err
	}
	if s.full, err = newFullState(s); err != nil {
		return nil, err
	}
	s.saved = ar.Mark()
	// Activations are never zeros: fill the arena past the weights with random bf16 once; GEMM inputs whose
	// producer kernels are not in the benchmark yet (attention, SwiGLU, CE) keep these values.
	fill := min(ar.Size()-alignUp(ar.Mark())-arenaAlign, 24<<30)
	if err := d.FillRandomBF16(ar.At(0, fill), fill/2, 99, 1); err != nil {
		return nil, err
	}
	return s, d.Sync()
}

// timer accumulates per-op device time through events around each op.
type timer struct {
	d    *Device
	last *Event
	ops  map[string]float64
	err  error
	evs  []struct {
		name string
		ev   *Event
	}
}

// mark ends the op that began at the previous mark and names it.
func (t *timer) mark(name string) {
	if t.err != nil {
		return
	}
	ev, err := t.d.Record()
	if err != nil {
		t.err = err
		return
	}
	t.evs = append(t.evs, struct {
		name string
		ev   *Event
	}{name, ev})
}

// finish waits for the step and sums the time between consecutive marks by name.
func (t *timer) finish() (float64, error) {
	if t.err != nil {
		return 0, t.err
	}
	t.ops = map[string]float64{}
	var total float64
	for i := 1; i < len(t.evs); i++ {
		if err := t.evs[i].ev.ev.Synchronize(); err != nil {
			return 0, fmt.Errorf("gpu: step failed on the device: %w", err)
		}
		ms, err := t.evs[i-1].ev.ev.Elapsed(t.evs[i].ev.ev)
		if err != nil {
			return 0, err
		}
		t.ops[t.evs[i].name] += ms
		total += ms
	}
	for _, e := range t.evs {
		e.ev.destroy()
	}
	return total, nil
}
