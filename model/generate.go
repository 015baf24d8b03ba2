package model

import (
	"fmt"
	"time"
)

// DefaultMaxNewTokens is the original pipeline's max_new_tokens for evaluation generation.
const DefaultMaxNewTokens = 256

// Generator runs Qwen2 for greedy decoding on the CPU with a KV cache, straight from this package's op
// math (EmbeddingForward, RMSNormForward, LinearLoRAForward, RoPEForward, the attention softmax of
// AttentionForward for one query against cached keys, SwiGLUForward), without building a graph. lm_head
// runs on the last position of each sequence only, so a step never holds [T, V] logits.
type Generator struct {
	w    *Weights
	lora *LoRAParams // nil: the base model
	cfg  Config
	ones []int32 // attention mask of a cache: all keys are real tokens
}

// KVCache is one sequence's keys (after RoPE) and values, per layer, as [Len, KVHeads·D] rows.
type KVCache struct {
	K, V [][]float32 // [L][Len·KVD]
	Len  int         // tokens cached
}

// NewGenerator checks that the adapter (nil for the base model) fits the weights.
func NewGenerator(w *Weights, lora *LoRAParams) (*Generator, error) {
	if w == nil {
		return nil, fmt.Errorf("generator: no weights")
	}
	g := &Generator{w: w, lora: lora, cfg: w.Config}
	if lora != nil {
		for _, l := range w.Layers {
			for _, p := range l.Projections() {
				a, okA := lora.A[p.Module]
				b, okB := lora.B[p.Module]
				if okA != okB {
					return nil, fmt.Errorf("generator: adapter for %s has only one of lora_A and lora_B", p.Module)
				}
				if okA && (len(a) != lora.Rank*p.W.In || len(b) != p.W.Out*lora.Rank) {
					return nil, fmt.Errorf("generator: adapter for %s has lora_A %d and lora_B %d values, want %d×%d and %d×%d",
						p.Module, len(a), len(b), lora.Rank, p.W.In, p.W.Out, lora.Rank)
				}
			}
		}
	}
	return g, nil
}

// linear is y = x·Wᵀ + bias (+ the LoRA branch) over rows. x [rows, In] → [rows, Out].
func (g *Generator) linear(p *Projection, x []float32, rows int) ([]float32, error) {
	w, err := p.W.Dense() // [Out, In]; float32 weights are shared, NF4 is dequantized for this call
	if err != nil {
		return nil, err
	}
	s := LinearShape{Rows: rows, In: p.W.In, Out: p.W.Out}
	var a, b []float32
	if g.lora != nil {
		if a = g.lora.A[p.Module]; a != nil {
			b = g.lora.B[p.Module]
			s.Rank, s.Scaling = g.lora.Rank, g.lora.Scaling
		}
	}
	y := make([]float32, rows*p.W.Out) // [rows, Out]
	LinearLoRAForward(y, x, w, p.Bias, a, b, s)
	return y, nil
}

// attendFunc computes layer l's attention output out [rows, Hq·D] from q [rows, Hq·D] and the new
// k, v [rows, Hkv·D] (RoPE applied), storing k and v in the caches.
type attendFunc func(l int, q, k, v, out []float32)

// forward runs the decoder stack on rows of token ids at the given positions and returns the final
// RMSNorm's output [rows, H].
func (g *Generator) forward(ids, positions []int32, attend attendFunc) ([]float32, error) {
	c := g.cfg
	rows, H := len(ids), c.HiddenSize
	x := make([]float32, rows*H) // [rows, H]
	if err := EmbeddingForward(x, g.w.Embed, ids, c.VocabSize, H); err != nil {
		return nil, err
	}
	h := make([]float32, rows*H)        // [rows, H]
	a := make([]float32, rows*c.QDim()) // [rows, Hq·D]
	for li, l := range g.w.Layers {
		RMSNormForward(h, x, l.InputNorm, rows, H, c.RMSNormEps)
		q, err := g.linear(l.Q, h, rows) // [rows, Hq·D]
		if err != nil {
			return nil, err
		}
		k, err := g.linear(l.K, h, rows) // [rows, Hkv·D]
		if err != nil {
			return nil, err
		}
		v, err := g.linear(l.V, h, rows) // [rows, Hkv·D]
		if err != nil {
			return nil, err
		}
		RoPEForward(q, q, positions, rows, c.NumHeads, c.HeadDim, c.RopeTheta)
		RoPEForward(k, k, positions, rows, c.NumKVHeads, c.HeadDim, c.RopeTheta)
		attend(li, q, k, v, a)
		o, err := g.linear(l.O, a, rows) // [rows, H]
		if err != nil {
			return nil, err
		}
		AddForward(x, x, o)
		RMSNormForward(h, x, l.PostNorm, rows, H, c.RMSNormEps)
		gate, err := g.linear(l.Gate, h, rows) // [rows, I]
		if err != nil {
			return nil, err
		}
		up, err := g.linear(l.Up, h, rows) // [rows, I]
		if err != nil {
			return nil, err
		}
		SwiGLUForward(gate, gate, up)
		d, err := g.linear(l.Down, gate, rows) // [rows, H]
		if err != nil {
			return nil, err
		}
		AddForward(x, x, d)
	}
	RMSNormForward(h, x, g.w.Norm, rows, H, c.RMSNormEps)
	return h, nil
}

// lmHead returns the logits [rows, V] of hidden rows [rows, H].
func (g *Generator) lmHead(h []float32, rows int) ([]float32, error) {
	w, err := g.w.LMHead.Dense() // [V, H]
	if err != nil {
		return nil, err
	}
	c := g.cfg
	out := make([]float32, rows*c.VocabSize) // [rows, V]
	LinearLoRAForward(out, h, w, nil, nil, nil, LinearShape{Rows: rows, In: c.HiddenSize, Out: c.VocabSize})
	return out, nil
}

// newCache allocates a cache with room for capacity tokens.
func (g *Generator) newCache(capacity int) *KVCache {
	kv := g.cfg.KVDim()
	c := &KVCache{K: make([][]float32, g.cfg.NumLayers), V: make([][]float32, g.cfg.NumLayers)}
	for l := range c.K {
		c.K[l] = make([]float32, 0, capacity*kv)
		c.V[l] = make([]float32, 0, capacity*kv)
	}
	return c
}

// mask returns n ones (all cached keys are real tokens).
func (g *Generator) mask(n int) []int32 {
	for len(g.ones) < n {
		g.ones = append(g.ones, 1)
	}
	return g.ones[:n]
}

// Prefill runs a prompt (positions 0..T−1, no padding), caches its keys and values, and returns the
// logits [V] of its last position. capacity is a hint of the total tokens the cache will hold.
func (g *Generator) Prefill(ids []int32, capacity int) (*KVCache, []float32, error) {
	T := len(ids)
	if T == 0 {
		return nil, nil, fmt.Errorf("generator: empty prompt")
	}
	c := g.cfg
	cache := g.newCache(max(capacity, T))
	s := NewAttnShape(1, T, c.NumHeads, c.NumKVHeads, c.HeadDim)
	attend := func(l int, q, k, v, out []float32) {
		cache.K[l] = append(cache.K[l], k...)
		cache.V[l] = append(cache.V[l], v...)
		AttentionForward(out, q, k, v, g.mask(T), s)
	}
	h, err := g.forward(ids, PositionsArange(1, T), attend) // [T, H]
	if err != nil {
		return nil, nil, fmt.Errorf("generator: prefill: %w", err)
	}
	cache.Len = T
	logits, err := g.lmHead(h[(T-1)*c.HiddenSize:], 1) // [1, V]
	if err != nil {
		return nil, nil, fmt.Errorf("generator: prefill: %w", err)
	}
	return cache, logits, nil
}

// Step appends one token to each cache (row r: ids[r] at position caches[r].Len) and returns the logits
// [len(ids), V] of those tokens. The rows are computed together, one matrix product per projection.
func (g *Generator) Step(caches []*KVCache, ids []int32) ([]float32, error) {
	if len(caches) != len(ids) || len(ids) == 0 {
		return nil, fmt.Errorf("generator: step with %d caches and %d ids", len(caches), len(ids))
	}
	c := g.cfg
	positions := make([]int32, len(ids)) // [rows]
	for r, kv := range caches {
		positions[r] = int32(kv.Len)
	}
	kvw, D := c.KVDim(), c.HeadDim
	attend := func(l int, q, k, v, out []float32) {
		for r, kv := range caches {
			kv.K[l] = append(kv.K[l], k[r*kvw:(r+1)*kvw]...)
			kv.V[l] = append(kv.V[l], v[r*kvw:(r+1)*kvw]...)
		}
		parallelFor(len(caches)*c.NumHeads, func(lo, hi int) {
			var p []float32
			for rh := lo; rh < hi; rh++ {
				r, h := rh/c.NumHeads, rh%c.NumHeads
				kv := caches[r]
				T := kv.Len + 1
				s := NewAttnShape(1, T, c.NumHeads, c.NumKVHeads, D)
				grp := h / s.GroupSize
				if cap(p) < T {
					p = make([]float32, T)
				}
				p = p[:T]
				qi := q[r*s.QWidth+h*D:][:D]
				oi := out[r*s.QWidth+h*D:][:D]
				clear(oi)
				// The same softmax and accumulation order as AttentionForward's last query row.
				if !attnProbs(p, qi, kv.K[l], g.mask(T), s, 0, grp, T-1) {
					continue
				}
				for j := range T {
					if p[j] == 0 {
						continue
					}
					axpy(p[j], kv.V[l][j*kvw+grp*D:][:D], oi)
				}
			}
		})
	}
	// g.mask grows a shared slice: size it before the parallel attention reads it.
	longest := 0
	for _, kv := range caches {
		longest = max(longest, kv.Len+1)
	}
	g.mask(longest)
	h, err := g.forward(ids, positions, attend) // [rows, H]
	if err != nil {
		return nil, fmt.Errorf("generator: step: %w", err)
	}
	for _, kv := range caches {
		kv.Len++
	}
	return g.lmHead(h, len(ids))
}

// GenerateOptions configure greedy decoding.
type GenerateOptions struct {
	MaxNewTokens int     // ≤ 0: DefaultMaxNewTokens
	StopIDs      []int32 // a sequence ends after emitting one of these (not included in its output)
	// Progress, when set, is called after each prompt finishes with the prompts done so far.
	Progress func(done int, elapsed time.Duration)
}

// Generate decodes greedily (argmax, first index on ties, as torch) for each prompt, all prompts
// together: each has its own KV cache, so prompts of different lengths need no padding and give the same
// tokens as one at a time. It returns the new tokens of each prompt, without the stop token.
func (g *Generator) Generate(prompts [][]int32, opt GenerateOptions) ([][]int32, error) {
	return GenerateGreedy(&cpuSteps{g: g}, prompts, opt)
}

// Argmax returns the index of the largest value, the first one on ties (torch.argmax).
func Argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}
