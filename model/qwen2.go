package model

import "sync"

// This file is the one definition of the Qwen2 model: the order of operations of the whole model and of a
// decoder layer, as transformers' modeling_qwen2.py has them (Qwen2Model.forward, Qwen2DecoderLayer,
// Qwen2Attention, Qwen2MLP). Every executor runs it through Ops: the gorgonia graph builder (training loss
// with gradients, logits), the CPU generator (prefill and decode steps with a KV cache) and the GPU decoder.
// None of them restates the sequence.

// Ops is what the Qwen2 definition asks of an executor. X is the executor's activation: a graph node, a host
// slice or a device buffer, always rows of the current tokens ([N, width], N = the tokens of this run). An
// executor may compute in place (the result may be one of the arguments). Names are the checkpoint name of a
// weight or the module path of an op (model.layers.0.self_attn.q_rope), for graph node names and per-op
// timing; an executor holding device copies of the weights finds them by these names.
type Ops[X any] interface {
	// Embed looks the run's token ids up in table [V, H] (float32 or bf16) → [N, H].
	Embed(name string, table *Frozen) (X, error)
	// RMSNorm is x / rms(x) · weight over rows; x [N, H], weight [H].
	RMSNorm(name string, weight []float32, x X, eps float32) (X, error)
	// Linear is x·Wᵀ + bias, plus the adapter's LoRA branch when the executor has one for p.Module.
	// x [N, In] → [N, Out].
	Linear(p *Projection, x X) (X, error)
	// RoPE rotates each of heads heads of x [N, heads·headDim] by the run's token positions.
	RoPE(name string, x X, heads, headDim int, theta float32) (X, error)
	// Attention is causal grouped-query attention of layer's q [N, Hq·D] over the run's keys and values
	// k, v [N, Hkv·D] (and, for a decoder, the layer's cached ones) → [N, Hq·D].
	Attention(name string, layer int, q, k, v X) (X, error)
	// Add is the residual sum x + y, both [N, H].
	Add(name string, x, y X) (X, error)
	// SwiGLU is silu(gate) · up, both [N, I].
	SwiGLU(name string, gate, up X) (X, error)
	// HeadRows is the rows of x [N, W] that the head reads, [M, W] (M ≤ N): applied after the last layer's
	// attention to its output and to the residual, because everything after it (o projection, residual
	// adds, norms, MLP, lm_head) is row-wise. An executor whose head reads every row returns x unchanged.
	HeadRows(name string, x X) (X, error)
	// Hidden sees the hidden states HF returns with output_hidden_states: the embeddings, each layer's
	// output and the final norm's output, all [N, H] (the last layer's and the norm's [M, H]: HeadRows').
	Hidden(x X)
	// LMHead is the head on the final hidden states x [M, H] with weight [V, H]: logits, the training loss,
	// or the next-token logits of each sequence's last position, as the executor's mode says.
	LMHead(w *Frozen, x X) (X, error)
}

// Forward runs the Qwen2 model (Qwen2ForCausalLM.forward) on ops: embedding, the decoder layers, the final
// RMSNorm and lm_head. It returns what ops.LMHead returned, or the first op's error.
func Forward[X any](ops Ops[X], w *Weights) (X, error) {
	c := w.Config
	r := &run[X]{ops: ops}
	x, err := ops.Embed(nameEmbed, w.Embed) // [N, H]
	if err != nil {
		return x, err
	}
	r.hidden(x)
	for i := range w.Layers {
		x = decoderLayer(r, w, i, x) // [N, H] ([M, H] after the last layer)
		r.hidden(x)
	}
	x = r.rmsNorm(nameNorm, w.Norm, x, c.RMSNormEps) // [M, H]
	r.hidden(x)
	if r.err != nil {
		return x, r.err
	}
	return ops.LMHead(w.LMHead, x)
}

// decoderLayer is Qwen2DecoderLayer: x + self_attn(input_layernorm(x)), then + mlp(post_attention_layernorm(·)).
// In the last layer the rows after attention are those ops.HeadRows keeps (all of them but in ModeLossHeadRows).
func decoderLayer[X any](r *run[X], w *Weights, i int, x X) X {
	c, l := w.Config, w.Layers[i]
	n := namesOf(i)
	// Qwen2Attention: q, k, v projections with bias, RoPE on q and k, causal GQA, o projection.
	h := r.rmsNorm(n.inNorm, l.InputNorm, x, c.RMSNormEps)       // [N, H]
	q := r.linear(l.Q, h)                                        // [N, Hq·D]
	k := r.linear(l.K, h)                                        // [N, Hkv·D]
	v := r.linear(l.V, h)                                        // [N, Hkv·D]
	q = r.rope(n.qRoPE, q, c.NumHeads, c.HeadDim, c.RopeTheta)   // [N, Hq·D]
	k = r.rope(n.kRoPE, k, c.NumKVHeads, c.HeadDim, c.RopeTheta) // [N, Hkv·D]
	a := r.attention(n.attn, i, q, k, v)                         // [N, Hq·D]
	// From here on every op is row-wise: the last layer keeps only the rows the head reads.
	if i == len(w.Layers)-1 {
		a = r.headRows(n.headAttn, a)     // [M, Hq·D]
		x = r.headRows(n.headResidual, x) // [M, H]
	}
	x = r.add(n.residualAttn, x, r.linear(l.O, a)) // [N or M, H]
	// Qwen2MLP: down(silu(gate(h)) · up(h)).
	h = r.rmsNorm(n.postNorm, l.PostNorm, x, c.RMSNormEps) // [N or M, H]
	gate := r.linear(l.Gate, h)                            // [N or M, I]
	up := r.linear(l.Up, h)                                // [N or M, I]
	m := r.swiGLU(n.act, gate, up)                         // [N or M, I]
	return r.add(n.residualMLP, x, r.linear(l.Down, m))    // [N or M, H]
}

// layerNames are the names decoderLayer gives layer i's weights and ops.
type layerNames struct {
	inNorm, postNorm, qRoPE, kRoPE, attn, residualAttn, residualMLP, act string
	headAttn, headResidual                                               string // the last layer's HeadRows
}

var (
	namesMu    sync.Mutex
	namesCache []*layerNames
)

// namesOf returns layer i's names, made once: a decode step runs the definition every token, and building
// the strings each time would cost allocations per layer per step.
func namesOf(i int) *layerNames {
	namesMu.Lock()
	defer namesMu.Unlock()
	for len(namesCache) <= i {
		p := layerPrefix(len(namesCache))
		namesCache = append(namesCache, &layerNames{inNorm: p + nameInNorm, postNorm: p + namePostNorm,
			qRoPE: p + "self_attn.q_rope", kRoPE: p + "self_attn.k_rope", attn: p + "self_attn",
			residualAttn: p + "residual_attn", residualMLP: p + "residual_mlp", act: p + "mlp.act",
			headAttn: p + "head_rows.attn", headResidual: p + "head_rows.residual"})
	}
	return namesCache[i]
}

// run calls the ops of one Forward and keeps the first error: once an op failed, no later op is called (the
// wrappers return their first argument unchanged).
type run[X any] struct {
	ops Ops[X]
	err error
}

// keep returns y, or x after remembering err.
func (r *run[X]) keep(x, y X, err error) X {
	if err != nil {
		r.err = err
		return x
	}
	return y
}

func (r *run[X]) rmsNorm(name string, weight []float32, x X, eps float32) X {
	if r.err != nil {
		return x
	}
	y, err := r.ops.RMSNorm(name, weight, x, eps)
	return r.keep(x, y, err)
}

func (r *run[X]) linear(p *Projection, x X) X {
	if r.err != nil {
		return x
	}
	y, err := r.ops.Linear(p, x)
	return r.keep(x, y, err)
}

func (r *run[X]) rope(name string, x X, heads, headDim int, theta float32) X {
	if r.err != nil {
		return x
	}
	y, err := r.ops.RoPE(name, x, heads, headDim, theta)
	return r.keep(x, y, err)
}

func (r *run[X]) attention(name string, layer int, q, k, v X) X {
	if r.err != nil {
		return q
	}
	y, err := r.ops.Attention(name, layer, q, k, v)
	return r.keep(q, y, err)
}

func (r *run[X]) headRows(name string, x X) X {
	if r.err != nil {
		return x
	}
	y, err := r.ops.HeadRows(name, x)
	return r.keep(x, y, err)
}

func (r *run[X]) add(name string, x, y X) X {
	if r.err != nil {
		return x
	}
	z, err := r.ops.Add(name, x, y)
	return r.keep(x, z, err)
}

func (r *run[X]) swiGLU(name string, gate, up X) X {
	if r.err != nil {
		return gate
	}
	y, err := r.ops.SwiGLU(name, gate, up)
	return r.keep(gate, y, err)
}

func (r *run[X]) hidden(x X) {
	if r.err == nil {
		r.ops.Hidden(x)
	}
}
