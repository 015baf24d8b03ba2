package train

import (
	"fmt"

	"github.com/t2m/t2m/model"
)

// DeviceOptimizer is a Backend that keeps the optimizer on its device (the CUDA backend): the LoRA values
// as fp32 masters, AdamW's moments and the gradient sum of the current update stay there, so an update
// costs no gradient download per micro-batch, no host AdamW and no upload of the new values. The host's
// copies (Params.Values, AdamW.M and V) are brought up to date only by StoreOptimizer, for checkpoints, the
// adapter and evaluations. Updater drives it.
type DeviceOptimizer interface {
	Backend
	// LoadOptimizer uploads the parameters and AdamW's moments (the start of a run, or a resumed
	// checkpoint's); from then on the backend's Loss reads the device's values, not Params.Values.
	LoadOptimizer(values [][]float32, opt *AdamW) error
	// ZeroGrads clears the device's gradient sum (the start of an update).
	ZeroGrads() error
	// AccumulateLoss is Loss with gradients: it returns the micro-batch's loss and adds its gradients into
	// the device's sum (dropout seeded by dropoutStep).
	AccumulateLoss(b model.Batch, batch, seq int, dropoutStep uint64) (float32, error)
	// AllReduceGrads replaces the device's gradient sum and extra (host values) with their sums over the
	// ranks of c (a data-parallel run).
	AllReduceGrads(c Collective, extra []float32) error
	// Step clips the gradient sum to maxNorm (≤ 0: no clipping) and applies AdamW step opt.Step with
	// learning rate lr and opt's hyperparameters (the caller has counted the step); it returns the norm
	// before clipping.
	Step(opt *AdamW, lr, maxNorm float64) (float64, error)
	// StoreOptimizer downloads the parameters into values and AdamW's moments into opt.M and opt.V.
	StoreOptimizer(values [][]float32, opt *AdamW) error
}

// Updater runs the parts of the training updates that depend on where the optimizer lives: on the host
// (the loop's gradient slices, ClipGradNorm, AdamW.Update) or, when the backend is a DeviceOptimizer, on
// its device. Both give the same updates: the gradient sums are the same fp32 additions in the same order,
// clipping and AdamW the same formulas (the device's within fp32 rounding of the host's). Per update:
// Begin, Loss for each micro-batch, AllReduce with several ranks, Step. Sync before reading Params or the
// optimizer state on the host.
type Updater struct {
	backend Backend
	dev     DeviceOptimizer // nil: on the host
	params  *Params
	opt     *AdamW
	maxNorm float64
	grads   [][]float32 // host: the current update's gradient sums, shaped like params.Values
	stale   bool        // device: the host's params and moments are older than the device's
}

// NewUpdater returns the updater of backend for params and opt (already holding a resumed checkpoint's
// state, if any), clipping at maxNorm: on the device when the backend is a DeviceOptimizer and host is
// false, which uploads the state there.
func NewUpdater(backend Backend, params *Params, opt *AdamW, maxNorm float64, host bool) (*Updater, error) {
	u := &Updater{backend: backend, params: params, opt: opt, maxNorm: maxNorm}
	if d, ok := backend.(DeviceOptimizer); ok && !host {
		if err := d.LoadOptimizer(params.Values, opt); err != nil {
			return nil, fmt.Errorf("moving the optimizer to %s: %w", backend.Name(), err)
		}
		u.dev = d
		return u, nil
	}
	u.grads = make([][]float32, len(params.Values))
	for i, v := range params.Values {
		u.grads[i] = make([]float32, len(v))
	}
	return u, nil
}

// OnDevice reports whether the optimizer runs on the backend's device.
func (u *Updater) OnDevice() bool { return u.dev != nil }

// Begin starts an update: the gradient sums are cleared.
func (u *Updater) Begin() error {
	if u.dev != nil {
		return u.dev.ZeroGrads()
	}
	for _, g := range u.grads {
		clear(g)
	}
	return nil
}

// Loss runs one micro-batch of the update (b.NumItems: the completion tokens of the whole update) and adds
// its gradients into the sums.
func (u *Updater) Loss(b model.Batch, rows, seq int, dropoutStep uint64) (float32, error) {
	if u.dev != nil {
		return u.dev.AccumulateLoss(b, rows, seq, dropoutStep)
	}
	return u.backend.Loss(b, rows, seq, dropoutStep, u.grads)
}

// AllReduce sums the gradient sums and extra over the ranks of c.
func (u *Updater) AllReduce(c Collective, extra []float32) error {
	if u.dev != nil {
		return u.dev.AllReduceGrads(c, extra)
	}
	return c.AllReduceSum(append(u.grads, extra))
}

// Step clips the summed gradients and applies AdamW with learning rate lr; it returns the norm before
// clipping.
func (u *Updater) Step(lr float64) (float64, error) {
	if u.dev == nil {
		norm := ClipGradNorm(u.grads, u.maxNorm)
		return norm, u.opt.Update(u.params.Values, u.grads, lr)
	}
	u.opt.Step++
	u.stale = true
	return u.dev.Step(u.opt, lr, u.maxNorm)
}

// Sync brings the host's parameters and optimizer state up to date (a download from the device when
// updates ran there since the last Sync).
func (u *Updater) Sync() error {
	if u.dev == nil || !u.stale {
		return nil
	}
	if err := u.dev.StoreOptimizer(u.params.Values, u.opt); err != nil {
		return fmt.Errorf("copying the optimizer state from %s: %w", u.backend.Name(), err)
	}
	u.stale = false
	return nil
}
