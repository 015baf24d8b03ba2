package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// TrainOptions configure the training benchmark: updates of GradAccum micro-batches of Batch sequences of
// Seq tokens, the loss on the last LossFrac of each sequence, LoRA of rank Rank on q,k,v,o,gate,up with the
// training dropout, AdamW and clipping as the training loop does them.
type TrainOptions struct {
	Shape
	Device                string
	Batch, Seq, GradAccum int
	Rank                  int
	LossFrac              float64
	Warmup, Updates       int  // untimed updates first, then timed ones (the median is reported)
	HostOptimizer         bool // gradient sums, clipping and AdamW on the host even on a GPU (train.Run.HostOptimizer)
	Recompute             bool // activation recomputation (gradient checkpointing; train.Recomputer backends)
	// WeightCacheGiB: dequantized weight copies the backend may keep (train.WeightCacher; t2m train's
	// --weight-cache-gib).
	WeightCacheGiB float64
	// Pack runs each micro-batch's Batch sequences packed into one row [1, Batch·Seq] (segments in the mask,
	// positions from 0 in each), as t2m train packs on the GPU (train.Run.Pack).
	Pack bool
	// Profile adds one micro-batch after the timed updates with each launch timed on the device
	// (LaunchProfiler backends: the GPU machine), reported by kind of op; the timed updates are not profiled.
	Profile bool
	Log     io.Writer
}

// TrainResult is one configuration's measurement (printed as one JSON line).
type TrainResult struct {
	System    string  `json:"system"`
	Device    string  `json:"gpu"`
	Model     string  `json:"model"`
	Layers    int     `json:"layers"`
	Batch     int     `json:"batch"`
	Seq       int     `json:"seq"`
	GradAccum int     `json:"grad_accum"`
	Rank      int     `json:"rank"`
	UpdateS   float64 `json:"update_s"` // median wall time of one update
	MicroS    float64 `json:"micro_s"`  // median wall time of one micro-batch's forward + backward
	// HostLaunchMs and DeviceWaitMs split a micro-batch's run on a train.HostTimer backend (medians): the
	// host launching its kernels, then waiting for the device to finish them. A wait near zero: host-bound.
	HostLaunchMs float64 `json:"host_launch_ms,omitempty"`
	DeviceWaitMs float64 `json:"device_wait_ms,omitempty"`
	Recompute    bool    `json:"gradient_checkpointing"`
	Packed       bool    `json:"packed,omitempty"` // micro-batches ran as one row [1, Batch·Seq] (TrainOptions.Pack)
	// ProfileMs: device milliseconds of one profiled micro-batch by kind of op (TrainOptions.Profile).
	ProfileMs  map[string]float64 `json:"profile_ms,omitempty"`
	OptimizerS float64            `json:"optimizer_s"` // median of the clip + AdamW part of an update
	Optimizer  string             `json:"optimizer"`   // where it ran: "device" or "host"
	TokPerS    float64            `json:"tok_per_s"`   // Batch·Seq·GradAccum / UpdateS
	Loss       float64            `json:"loss"`        // last update's loss (a sanity value: about ln(vocab) at random weights)
	// GPU memory at the end (a backend that reports it, train.MemoryReporter): what the backend's arena
	// holds (weights, LoRA + optimizer, the activations' plan) and the whole GPU's use (nvidia-smi's number).
	ArenaGiB   float64 `json:"arena_gib,omitempty"`
	CacheGiB   float64 `json:"weight_cache_gib,omitempty"` // of which bf16 weight copies (TrainOptions.WeightCacheGiB)
	GPUUsedGiB float64 `json:"gpu_used_gib,omitempty"`
}

// Train times training updates on the device's training backend (the one `t2m train` makes for that
// device) and prints the result as one JSON line to out.
func Train(o TrainOptions, out io.Writer) (*TrainResult, error) {
	if o.Batch < 1 || o.Seq < 4 || o.GradAccum < 1 || o.Rank < 1 || o.Updates < 1 || o.Warmup < 0 || !(o.LossFrac > 0 && o.LossFrac <= 1) {
		return nil, fmt.Errorf("bench train: batch, grad-accum, rank and updates must be ≥ 1, seq ≥ 4, warmup ≥ 0, loss fraction in (0, 1]")
	}
	dev, desc, err := device(o.Device)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	w, err := o.weights()
	if err != nil {
		return nil, err
	}
	c := w.Config
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench train: %s, %d layers, random NF4 weights made in %s\n", o.Model, c.NumLayers, time.Since(t0).Round(time.Millisecond))
	}
	adapter, err := lora.New(lora.Config{R: o.Rank, Alpha: float64(2 * o.Rank), Dropout: train.DefaultDropout}, c.NumLayers, c.LoRADims(), o.Seed)
	if err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	lp, err := model.LoRAFromAdapter(adapter)
	if err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	lp.Dropout = float32(train.DefaultDropout)
	params := train.NewParams(lp)
	backend, err := dev.NewBackend(w, params)
	if err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	defer backend.Close()
	if o.Recompute {
		r, ok := backend.(train.Recomputer)
		if !ok {
			return nil, fmt.Errorf("bench train: the %s backend has no activation recomputation", backend.Name())
		}
		if err := r.SetRecompute(true); err != nil {
			return nil, fmt.Errorf("bench train: %w", err)
		}
	}
	if wc, ok := backend.(train.WeightCacher); ok && o.WeightCacheGiB > 0 {
		if err := wc.SetWeightCache(int64(o.WeightCacheGiB * (1 << 30))); err != nil {
			return nil, fmt.Errorf("bench train: %w", err)
		}
	}
	if r, ok := backend.(train.ShapeReserver); ok {
		if err := r.Reserve(o.runShape()); err != nil {
			return nil, fmt.Errorf("bench train: %w", err)
		}
	}
	if t, ok := backend.(train.GEMMTuner); ok { // as t2m train does before its first update
		summary, err := t.TuneGEMMs([]int{o.Batch * o.Seq})
		if err != nil {
			return nil, fmt.Errorf("bench train: %w", err)
		}
		if summary != "" && o.Log != nil {
			fmt.Fprintln(o.Log, summary)
		}
	}
	batches := trainBatches(o, c.VocabSize)
	opt := train.NewAdamW(params.Sizes(), train.DefaultWeightDecay)
	upd, err := train.NewUpdater(backend, params, opt, train.DefaultMaxGradNorm, o.HostOptimizer)
	if err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	tt, err := timeUpdates(backend, upd, batches, o)
	if err != nil {
		return nil, err
	}
	var prof map[string]float64
	if o.Profile {
		if prof, err = profileMicroBatch(backend, upd, batches[0], o); err != nil {
			return nil, err
		}
	}
	r := &TrainResult{System: "t2m-train-" + o.Device, Device: desc, Model: o.Model, Layers: c.NumLayers, Batch: o.Batch,
		Seq: o.Seq, GradAccum: o.GradAccum, Rank: o.Rank, UpdateS: round4(tt.update), MicroS: round4(tt.micro), Recompute: o.Recompute, Packed: o.Pack,
		OptimizerS: round4(tt.opt), Optimizer: map[bool]string{true: "device", false: "host"}[upd.OnDevice()], TokPerS: round1(float64(o.Batch*o.Seq*o.GradAccum) / tt.update), Loss: round4(tt.loss),
		ProfileMs: prof, HostLaunchMs: round2(tt.launchMs), DeviceWaitMs: round2(tt.waitMs)}
	if mr, ok := backend.(train.MemoryReporter); ok {
		if m, err := mr.Memory(); err == nil {
			r.ArenaGiB, r.GPUUsedGiB = round4(float64(m.ArenaBytes)/(1<<30)), round4(float64(m.DeviceUsedBytes)/(1<<30))
			r.CacheGiB = round4(float64(m.WeightCacheBytes) / (1 << 30))
		}
	}
	return r, printJSON(out, r)
}

// LaunchProfiler is a training backend that can time its device launches by kind of op (the GPU machine).
type LaunchProfiler interface {
	SetProfile(on bool)
	Profile() (ms map[string]float64, runs int)
}

// updateTimes are the medians of timeUpdates' timed updates (seconds; the host split in milliseconds, zero
// without a train.HostTimer backend) and the last update's loss.
type updateTimes struct {
	update, micro, opt, launchMs, waitMs, loss float64
}

// timeUpdates runs o.Warmup + o.Updates updates of the micro-batches and times those after the warm-up.
func timeUpdates(backend train.Backend, upd *train.Updater, batches []model.Batch, o TrainOptions) (updateTimes, error) {
	var updates, micros, opts, launches, waits []float64
	var loss float64
	rows, seq := o.runShape()
	for u := range o.Warmup + o.Updates {
		t0 := time.Now()
		if err := upd.Begin(); err != nil {
			return updateTimes{}, fmt.Errorf("bench train: update %d: %w", u+1, err)
		}
		loss = 0
		for k, b := range batches {
			tm := time.Now()
			l, err := upd.Loss(b, rows, seq, uint64(u*o.GradAccum+k))
			if err != nil {
				return updateTimes{}, fmt.Errorf("bench train: update %d: %w", u+1, err)
			}
			loss += float64(l)
			if u >= o.Warmup {
				micros = append(micros, time.Since(tm).Seconds())
				if ht, ok := backend.(train.HostTimer); ok {
					l, w := ht.HostTimes()
					launches, waits = append(launches, l.Seconds()*1000), append(waits, w.Seconds()*1000)
				}
			}
		}
		to := time.Now()
		if _, err := upd.Step(1e-4); err != nil {
			return updateTimes{}, fmt.Errorf("bench train: %w", err)
		}
		if u >= o.Warmup {
			opts = append(opts, time.Since(to).Seconds())
			updates = append(updates, time.Since(t0).Seconds())
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "bench train: update %d/%d %.3f s, loss %.4f\n", u+1, o.Warmup+o.Updates, time.Since(t0).Seconds(), loss)
		}
	}
	t := updateTimes{update: median(updates), micro: median(micros), opt: median(opts), loss: loss}
	if len(launches) > 0 {
		t.launchMs, t.waitMs = median(launches), median(waits)
	}
	return t, nil
}

// profileMicroBatch runs one more micro-batch with the backend's launch profiler on and returns its
// device milliseconds by kind of op (rounded to 0.01 ms); the profile also goes to o.Log as a table.
func profileMicroBatch(backend train.Backend, upd *train.Updater, b model.Batch, o TrainOptions) (map[string]float64, error) {
	p, ok := backend.(LaunchProfiler)
	if !ok {
		return nil, fmt.Errorf("bench train: the %s backend cannot time its launches (--profile)", backend.Name())
	}
	p.SetProfile(true)
	defer p.SetProfile(false)
	if err := upd.Begin(); err != nil {
		return nil, fmt.Errorf("bench train: profiled micro-batch: %w", err)
	}
	rows, seq := o.runShape()
	if _, err := upd.Loss(b, rows, seq, 0); err != nil {
		return nil, fmt.Errorf("bench train: profiled micro-batch: %w", err)
	}
	ms, runs := p.Profile()
	if runs != 1 {
		return nil, fmt.Errorf("bench train: the profiler saw %d runs of the micro-batch, want 1", runs)
	}
	keys := make([]string, 0, len(ms))
	for k := range ms {
		keys = append(keys, k)
	}
	for k, v := range profilePhases(ms) {
		ms[k] = v
	}
	out := roundedProfile(ms, 2)
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench train: one micro-batch [%d, %d] on the device, by kind of op:\n", rows, seq)
		writeProfile(o.Log, ms, keys, 26, 2)
		fmt.Fprintf(o.Log, "  forward %.2f ms, loss (lm_head + cross-entropy) %.2f ms, backward %.2f ms\n",
			ms["phase: forward"], ms["phase: loss"], ms["phase: backward"])
	}
	return out, nil
}

// profilePhases sums a launch profile by phase of the step: "phase: backward" (the gradient ops, gorgonia's
// gradient sums and slices), "phase: loss" (the fused lm_head + cross-entropy, which also writes the
// gradient it starts the backward with) and "phase: forward" (the rest). Kinds "of which ..." are parts of
// others and not added.
func profilePhases(ms map[string]float64) map[string]float64 {
	out := map[string]float64{"phase: forward": 0, "phase: loss": 0, "phase: backward": 0}
	for k, v := range ms {
		switch {
		case strings.HasPrefix(k, "of which"), strings.HasPrefix(k, "phase: "):
		case strings.Contains(k, "Grad") || k == "gorgonia +" || k == "SliceOp":
			out["phase: backward"] += v
		case strings.HasPrefix(k, "LMHeadCrossEntropy"):
			out["phase: loss"] += v
		default:
			out["phase: forward"] += v
		}
	}
	return out
}

// trainBatches makes GradAccum micro-batches [Batch, Seq] of random ids, labels on the last LossFrac of
// each row; NumItems counts the completion tokens of the whole window, as the training loop sets it.
func trainBatches(o TrainOptions, vocab int) []model.Batch {
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	n := o.Batch * o.Seq
	first := o.Seq - max(1, int(float64(o.Seq)*o.LossFrac)) // the first position with a label
	items := 0
	bs := make([]model.Batch, o.GradAccum)
	for k := range bs {
		ids := randomIDs(rng, n, vocab) // [B·T]
		labels := make([]int32, n)      // [B·T]
		for i := range labels {
			labels[i] = -100
			if i%o.Seq >= first && (!o.Pack || i%o.Seq > 0) { // packed: no row predicts a segment's first
				labels[i] = ids[i]
				items++
			}
		}
		bs[k] = model.Batch{IDs: ids, Labels: labels}
		if o.Pack { // one row: sequence b is segment b+1, its positions from 0
			bs[k].Mask, bs[k].Positions = make([]int32, n), make([]int32, n) // [1·B·T] each
			for i := range n {
				bs[k].Mask[i], bs[k].Positions[i] = int32(i/o.Seq+1), int32(i%o.Seq)
			}
		}
	}
	for k := range bs {
		bs[k].NumItems = float32(items)
	}
	return bs
}

// runShape is the shape each micro-batch runs at: [Batch, Seq], or packed [1, Batch·Seq].
func (o TrainOptions) runShape() (rows, seq int) {
	if o.Pack {
		return 1, o.Batch * o.Seq
	}
	return o.Batch, o.Seq
}

func round4(x float64) float64 { return float64(int64(x*1e4+0.5)) / 1e4 }
func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
