package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Sampling configures random decoding in place of greedy argmax, as Hugging Face's generate(do_sample=True)
// applies its warpers: the logits are divided by Temperature, then top-p (nucleus) filtering keeps the most
// probable tokens whose probabilities sum to at least TopP, and one token is drawn from what is left.
//
// A Temperature of 0 means greedy decoding: GenerateGreedy then runs its argmax path unchanged, so its
// tokens are bit-identical to those without Sampling.
type Sampling struct {
	Temperature float64 // ≥ 0; 0: greedy
	TopP        float64 // in (0, 1]; 1 keeps every token
	Seed        uint64  // the same seed, prompts and model give the same tokens
}

// Validate checks the ranges: Temperature finite and ≥ 0, TopP in (0, 1]. Its errors name the flags.
func (s Sampling) Validate() error {
	if math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0) || s.Temperature < 0 {
		return fmt.Errorf("--temperature %v: want a finite number ≥ 0 (0: greedy)", s.Temperature)
	}
	if math.IsNaN(s.TopP) || !(s.TopP > 0 && s.TopP <= 1) {
		return fmt.Errorf("--top-p %v: want a number in (0, 1] (1: no nucleus filtering)", s.TopP)
	}
	return nil
}

// Greedy reports whether s decodes greedily (Temperature 0).
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// LogitsSteps is what sampling needs from a DecodeSteps besides it: the logits rows themselves, on the
// host, instead of their argmax. The CPU generator implements it, and the GPU decoder by downloading its
// logits buffer.
type LogitsSteps interface {
	// PrefillLogits is Prefill returning the logits [len(prompts), V] of each prompt's last position.
	PrefillLogits(slots []int32, prompts [][]int32) ([]float32, error)
	// StepLogits is Step returning the logits [len(seqs), V] of each row.
	StepLogits(seqs, ids, pos []int32) ([]float32, error)
}

// picker draws the next tokens from logits rows for GenerateGreedy when sampling. A nil *picker is the
// greedy path: its methods call DecodeSteps' Prefill and Step, untouched.
type picker struct {
	s     Sampling
	steps LogitsSteps
	rng   *rand.Rand
	probs []float64 // [V] scratch
	order []int     // [V] scratch: token ids by descending probability
}

// newPicker returns nil for greedy decoding (s nil or Temperature 0), else a picker over steps, which must
// implement LogitsSteps.
func newPicker(steps DecodeSteps, s *Sampling) (*picker, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Greedy() {
		return nil, nil
	}
	ls, ok := steps.(LogitsSteps)
	if !ok {
		return nil, fmt.Errorf("generator: this device decodes greedily only (%T has no logits for sampling): use --temperature 0", steps)
	}
	// The second PCG word is fixed ("t2msampl"), so the seed alone decides the stream.
	return &picker{s: *s, steps: ls, rng: rand.New(rand.NewPCG(s.Seed, 0x7432_6d73_616d_706c))}, nil
}

// prefill is s.Prefill, or a sample from each prompt's last logits row.
func (p *picker) prefill(s DecodeSteps, slots []int32, prompts [][]int32) ([]int32, error) {
	if p == nil {
		return s.Prefill(slots, prompts)
	}
	logits, err := p.steps.PrefillLogits(slots, prompts) // [n, V]
	if err != nil {
		return nil, err
	}
	return p.rows(logits, len(prompts))
}

// step is s.Step, or a sample from each row's logits.
func (p *picker) step(s DecodeSteps, seqs, ids, pos []int32) ([]int32, error) {
	if p == nil {
		return s.Step(seqs, ids, pos)
	}
	logits, err := p.steps.StepLogits(seqs, ids, pos) // [n, V]
	if err != nil {
		return nil, err
	}
	return p.rows(logits, len(seqs))
}

// rows samples one token from each of the n rows of logits [n, V], in row order.
func (p *picker) rows(logits []float32, n int) ([]int32, error) {
	if n == 0 || len(logits)%n != 0 {
		return nil, fmt.Errorf("generator: %d logits for %d rows", len(logits), n)
	}
	V := len(logits) / n
	out := make([]int32, n)
	for r := range out {
		out[r] = p.sample(logits[r*V : (r+1)*V])
	}
	return out, nil
}

// sample draws one id from softmax(logits/T) restricted to the top-p nucleus. logits [V].
func (p *picker) sample(logits []float32) int32 {
	V := len(logits)
	if cap(p.probs) < V {
		p.probs, p.order = make([]float64, V), make([]int, V)
	}
	probs := p.probs[:V]
	hi := math.Inf(-1)
	for _, x := range logits {
		hi = math.Max(hi, float64(x))
	}
	if math.IsInf(hi, -1) || math.IsNaN(hi) {
		return Argmax(logits) // no finite logit to sample from
	}
	sum := 0.0
	for i, x := range logits {
		e := math.Exp((float64(x) - hi) / p.s.Temperature)
		if math.IsNaN(e) {
			e = 0
		}
		probs[i] = e
		sum += e
	}
	if p.s.TopP >= 1 {
		return int32(draw(probs, nil, p.rng.Float64()*sum))
	}
	order := p.order[:V]
	for i := range order {
		order[i] = i
	}
	// Descending probability, lower id first on ties, so the nucleus is the same on every run.
	sort.Slice(order, func(a, b int) bool {
		pa, pb := probs[order[a]], probs[order[b]]
		return pa > pb || pa == pb && order[a] < order[b]
	})
	kept, mass := 0, 0.0
	for kept < V {
		mass += probs[order[kept]]
		kept++
		if mass >= p.s.TopP*sum {
			break
		}
	}
	return int32(draw(probs, order[:kept], p.rng.Float64()*mass))
}

// draw returns the id at which the running sum of probs (over ids in order, or all ids when order is nil)
// passes u; the last id considered when rounding leaves u past the end.
func draw(probs []float64, order []int, u float64) int {
	acc := 0.0
	if order == nil {
		last := 0
		for i, q := range probs {
			if q == 0 {
				continue
			}
			acc += q
			last = i
			if u < acc {
				return i
			}
		}
		return last
	}
	for _, i := range order {
		acc += probs[i]
		if u < acc {
			return i
		}
	}
	return order[len(order)-1]
}

// PrefillLogits runs each prompt into its slot and returns the logits [len(prompts), V] of its last
// position.
func (c *cpuSteps) PrefillLogits(slots []int32, prompts [][]int32) ([]float32, error) {
	if len(slots) != len(prompts) {
		return nil, fmt.Errorf("generator: %d slots for %d prompts", len(slots), len(prompts))
	}
	V := c.g.cfg.VocabSize
	out := make([]float32, 0, len(prompts)*V) // [n, V]
	for i, p := range prompts {
		if slots[i] < 0 || int(slots[i]) >= len(c.caches) {
			return nil, fmt.Errorf("prompt %d: slot %d outside 0..%d", i, slots[i], len(c.caches)-1)
		}
		kv, logits, err := c.g.Prefill(p, c.capacity)
		if err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, err)
		}
		c.caches[slots[i]] = kv
		out = append(out, logits...)
	}
	return out, nil
}

// StepLogits appends one token per row and returns the logits [len(seqs), V].
func (c *cpuSteps) StepLogits(seqs, ids, pos []int32) ([]float32, error) {
	cs := make([]*KVCache, len(seqs))
	for r, s := range seqs {
		if cs[r] = c.caches[s]; int32(cs[r].Len) != pos[r] {
			return nil, fmt.Errorf("row %d: position %d, cache holds %d tokens", r, pos[r], cs[r].Len)
		}
	}
	return c.g.Step(cs, ids) // [rows, V]
}
