package train

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// chunk is the number of values one task of the parallel optimizer loops handles. It is fixed, not
// derived from the core count, so ClipGradNorm's partial sums (and so every update) are the same bits on
// any machine.
const chunk = 1 << 16

// span is one task: values [lo, hi) of parameter i.
type span struct{ i, lo, hi int }

// spans cuts parameters of these sizes into chunk-sized tasks, in order.
func spans(sizes []int) []span {
	var out []span
	for i, n := range sizes {
		for lo := 0; lo < n; lo += chunk {
			out = append(out, span{i, lo, min(n, lo+chunk)})
		}
	}
	return out
}

// parallel runs body on every task, on all cores. A 7B model's LoRA holds about 15M values: one serial
// pass of AdamW over them takes about 0.1 s, a GPU step about 0.12 s.
func parallel(tasks []span, body func(k int, t span)) {
	workers := min(runtime.GOMAXPROCS(0), len(tasks))
	if workers <= 1 {
		for k, t := range tasks {
			body(k, t)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, len(tasks))
	for k := range tasks {
		next <- k
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				body(k, tasks[k])
			}
		}()
	}
	wg.Wait()
}

func sizesOf(vs [][]float32) []int {
	s := make([]int, len(vs))
	for i, v := range vs {
		s[i] = len(v)
	}
	return s
}

// AdamW is torch.optim.AdamW (decoupled weight decay, bias-corrected moments, non-amsgrad, fp32), the
// optimizer of HF Trainer's "adamw_torch". For each parameter p with gradient g at step t (from 1):
//
//	p ← p·(1 − lr·wd)
//	m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//	p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
//
// The original pipeline used bitsandbytes' paged_adamw_8bit, which keeps the moments in 8 bits; t2m keeps
// them in fp32 (the LoRA parameters are few), so its updates are torch's exact ones.
type AdamW struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
	Step         int         // updates done so far (t of the last update)
	M, V         [][]float32 // first and second moments, one slice per parameter, shaped like it
}

// NewAdamW returns AdamW with torch's defaults (β 0.9/0.999, ε 1e-8) and the given weight decay, with
// zero moments for parameters of these sizes.
func NewAdamW(sizes []int, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
	for _, n := range sizes {
		o.M = append(o.M, make([]float32, n))
		o.V = append(o.V, make([]float32, n))
	}
	return o
}

// Update applies one step with learning rate lr to params, given their gradients (same shapes).
func (o *AdamW) Update(params, grads [][]float32, lr float64) error {
	if len(params) != len(o.M) || len(grads) != len(o.M) {
		return fmt.Errorf("adamw: %d parameters and %d gradients, the optimizer has state for %d", len(params), len(grads), len(o.M))
	}
	o.Step++
	t := float64(o.Step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	stepSize := lr / bc1
	sqrtBC2 := math.Sqrt(bc2)
	decay := float32(1 - lr*o.WeightDecay)
	// torch takes the Python-float coefficients to float32 after computing 1−β in double.
	w1, b2, w2 := float32(1-o.Beta1), float32(o.Beta2), float32(1-o.Beta2)
	for i, p := range params {
		if len(p) != len(o.M[i]) || len(grads[i]) != len(o.M[i]) {
			return fmt.Errorf("adamw: parameter %d has %d values and gradient %d, the optimizer state %d", i, len(p), len(grads[i]), len(o.M[i]))
		}
	}
	parallel(spans(sizesOf(params)), func(_ int, t span) {
		p, g, m, v := params[t.i], grads[t.i], o.M[t.i], o.V[t.i]
		for j := t.lo; j < t.hi; j++ {
			if o.WeightDecay != 0 {
				p[j] *= decay
			}
			// torch: m.lerp_(g, 1−β1) = m + (1−β1)(g−m); v.mul_(β2).addcmul_(g, g, 1−β2).
			m[j] += w1 * (g[j] - m[j])
			v[j] = v[j]*b2 + w2*g[j]*g[j]
			denom := float32(math.Sqrt(float64(v[j])))/float32(sqrtBC2) + float32(o.Eps)
			p[j] -= float32(stepSize) * m[j] / denom
		}
	})
	return nil
}

// ClipGradNorm scales the gradients in place so their global L2 norm is at most maxNorm, as
// torch.nn.utils.clip_grad_norm_: coef = maxNorm / (norm + 1e-6), applied only when below 1. It returns
// the norm before clipping. maxNorm ≤ 0 only measures.
func ClipGradNorm(grads [][]float32, maxNorm float64) float64 {
	tasks := spans(sizesOf(grads))
	partial := make([]float64, len(tasks)) // one per chunk, summed in order: the same bits on any machine
	parallel(tasks, func(k int, t span) {
		var ss float64
		for _, x := range grads[t.i][t.lo:t.hi] {
			ss += float64(x) * float64(x)
		}
		partial[k] = ss
	})
	var ss float64
	for _, p := range partial {
		ss += p
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 {
		if coef := maxNorm / (norm + 1e-6); coef < 1 {
			c := float32(coef)
			parallel(tasks, func(_ int, t span) {
				g := grads[t.i][t.lo:t.hi]
				for j := range g {
					g[j] *= c
				}
			})
		}
	}
	return norm
}

// Schedule is HF's learning-rate schedule: linear warmup from 0 over Warmup steps, then cosine decay
// to 0 at Total steps (get_cosine_schedule_with_warmup, 0.5 cycles) or linear decay
// (get_linear_schedule_with_warmup) or constant. The rate of update k (0-based) is LR(k), so the first
// update of a warmup has rate 0, as in HF.
type Schedule struct {
	Peak          float64
	Warmup, Total int
	Kind          string // "cosine" (the original's), "linear" or "constant"
}

// Schedulers are the accepted Schedule kinds (t2m's --lr-scheduler), the original's first.
var Schedulers = []string{"cosine", "linear", "constant"}

// CheckScheduler returns an error naming kind and the accepted kinds unless kind is one of Schedulers.
func CheckScheduler(kind string) error {
	if !slices.Contains(Schedulers, kind) {
		return fmt.Errorf("unknown learning-rate schedule %q: accepted are %s", kind, strings.Join(Schedulers, ", "))
	}
	return nil
}

// ZeroLRUpdates counts the updates of the schedule whose learning rate is 0: the first update of a warmup
// (HF's first warmup step has rate 0) and, for cosine and linear decay, none other before Total. A run all
// of whose updates have rate 0 leaves its adapter unchanged.
func (s Schedule) ZeroLRUpdates() int {
	n := 0
	for k := range s.Total {
		if s.LR(k) == 0 {
			n++
		}
	}
	return n
}

// WarmupSteps is HF's ceil(total · ratio).
func WarmupSteps(total int, ratio float64) int {
	return int(math.Ceil(float64(total) * ratio))
}

// LR returns the learning rate of update k.
func (s Schedule) LR(k int) float64 {
	if k < s.Warmup {
		return s.Peak * float64(k) / float64(max(1, s.Warmup))
	}
	switch s.Kind {
	case "constant":
		return s.Peak
	case "linear":
		return s.Peak * max(0, float64(s.Total-k)/float64(max(1, s.Total-s.Warmup)))
	default:
		progress := float64(k-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		return s.Peak * max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
}
