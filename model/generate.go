package model

import (
	"errors"
	"fmt"
	"time"
)

// DefaultMaxNewTokens is the original pipeline's max_new_tokens for evaluation generation.
const DefaultMaxNewTokens = 256

// Generator runs Qwen2 for greedy decoding on the CPU with a KV cache: the model definition (Forward) over
// hostOps, which calls this package's op math (EmbeddingForward, RMSNormForward, LinearLoRAForward,
// RoPEForward, the attention softmax of AttentionForward for one query against cached keys, SwiGLUForward)
// on host slices, without building a graph. lm_head runs on the last position of each prompt only, so a
// prefill never holds [T, V] logits.
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

// hostOps executes the model definition (Forward) on host slices for one prefill or decode step: rows
// tokens at the given positions; attend reads and fills the KV caches; LMHead takes the last row only when
// lastOnly (a prefill).
type hostOps struct {
	g         *Generator
	ids, pos  []int32 // [rows]
	attend    attendFunc
	lastOnly  bool
	rows, dim int // dim: the hidden size
}

// Embed looks the ids up → [rows, H].
func (o *hostOps) Embed(_ string, table *Frozen) ([]float32, error) {
	x := make([]float32, o.rows*o.g.cfg.HiddenSize) // [rows, H]
	return x, table.Rows(x, o.ids)
}

// RMSNorm writes a new [rows, H].
func (o *hostOps) RMSNorm(_ string, weight, x []float32, eps float32) ([]float32, error) {
	h := make([]float32, len(x)) // [rows, H]
	RMSNormForward(h, x, weight, o.rows, o.dim, eps)
	return h, nil
}

// Linear is Generator.linear.
func (o *hostOps) Linear(p *Projection, x []float32) ([]float32, error) {
	return o.g.linear(p, x, o.rows)
}

// RoPE rotates x in place.
func (o *hostOps) RoPE(_ string, x []float32, heads, headDim int, theta float32) ([]float32, error) {
	RoPEForward(x, x, o.pos, o.rows, heads, headDim, theta)
	return x, nil
}

// Attention attends over the caches (attend).
func (o *hostOps) Attention(_ string, layer int, q, k, v []float32) ([]float32, error) {
	out := make([]float32, len(q)) // [rows, Hq·D]
	o.attend(layer, q, k, v, out)
	return out, nil
}

// Add adds y into x.
func (o *hostOps) Add(_ string, x, y []float32) ([]float32, error) {
	AddForward(x, x, y)
	return x, nil
}

// SwiGLU writes silu(gate)·up into gate.
func (o *hostOps) SwiGLU(_ string, gate, up []float32) ([]float32, error) {
	SwiGLUForward(gate, gate, up)
	return gate, nil
}

// HeadRows keeps every row: the generator's head reads them all (or the last, LMHead's choice).
func (o *hostOps) HeadRows(_ string, x []float32) ([]float32, error) { return x, nil }

// Hidden keeps nothing.
func (o *hostOps) Hidden([]float32) {}

// LMHead returns the logits [rows, V], or [1, V] of the last row.
func (o *hostOps) LMHead(w *Frozen, x []float32) ([]float32, error) {
	rows := o.rows
	if o.lastOnly {
		x, rows = x[(rows-1)*o.dim:], 1
	}
	dw, err := w.Dense() // [V, H]
	if err != nil {
		return nil, err
	}
	c := o.g.cfg
	out := make([]float32, rows*c.VocabSize) // [rows, V]
	LinearLoRAForward(out, x, dw, nil, nil, nil, LinearShape{Rows: rows, In: c.HiddenSize, Out: c.VocabSize})
	return out, nil
}

// forward runs the model definition on rows of token ids at the given positions and returns the logits.
func (g *Generator) forward(ids, positions []int32, attend attendFunc, lastOnly bool) ([]float32, error) {
	return Forward[[]float32](&hostOps{g: g, ids: ids, pos: positions, attend: attend, lastOnly: lastOnly,
		rows: len(ids), dim: g.cfg.HiddenSize}, g.w)
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
	logits, err := g.forward(ids, PositionsArange(1, T), attend, true) // [1, V]
	if err != nil {
		return nil, nil, fmt.Errorf("generator: prefill: %w", err)
	}
	cache.Len = T
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
	logits, err := g.forward(ids, positions, attend, false) // [rows, V]
	if err != nil {
		return nil, fmt.Errorf("generator: step: %w", err)
	}
	for _, kv := range caches {
		kv.Len++
	}
	return logits, nil
}

// GenerateOptions configure decoding: greedy unless Sampling says otherwise.
type GenerateOptions struct {
	MaxNewTokens int     // ≤ 0: DefaultMaxNewTokens
	StopIDs      []int32 // a sequence ends after emitting one of these (not included in its output)
	// Sampling, when set with a Temperature above 0, draws each token (see Sampling) instead of the argmax;
	// the executor must then implement LogitsSteps.
	Sampling *Sampling
	// Progress, when set, is called when prompts finish, with the prompts done and the new tokens generated so
	// far (those of unfinished prompts included).
	Progress func(done, newTokens int, elapsed time.Duration)
	// Slots is how many sequences decode together at most (continuous batching, see GenerateGreedy);
	// ≤ 0: all prompts at once.
	Slots int
	// Stop, when closed, ends the generation before its next prefill or step with ErrStopped (Ctrl-C).
	Stop <-chan struct{}
}

// ErrStopped is GenerateGreedy's error when GenerateOptions.Stop was closed.
var ErrStopped = errors.New("generation stopped")

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
