package model

import (
	"encoding/json"
	"fmt"
)

// NamedTensor is one checkpoint tensor in Hugging Face naming: row-major shape and float32 values (shared
// with the Weights, not copied).
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// FloatTensors lists every tensor of a Hugging Face Qwen2 checkpoint of w, in checkpoint order: the embedding;
// per layer the input norm, q, k, v (weights and biases), o, the post-attention norm, gate, up and down;
// the final norm; lm_head unless the config ties it to the embedding. A quantized (NF4) projection is an
// error: merged and exported models are written from the original weights, never from NF4 (Tensors, for
// safetensors, dequantizes them instead).
func (w *Weights) FloatTensors() ([]NamedTensor, error) {
	c := w.Config
	H, V := c.HiddenSize, c.VocabSize
	embed, err := w.Embed.Dense()
	if err != nil {
		return nil, err
	}
	ts := []NamedTensor{{nameEmbed, []int{V, H}, embed}}
	for i, l := range w.Layers {
		prefix := layerPrefix(i)
		ts = append(ts, NamedTensor{prefix + nameInNorm, []int{H}, l.InputNorm})
		for j, p := range l.Projections() {
			if p.W.F32 == nil {
				return nil, fmt.Errorf("%s is quantized (NF4): load the original bf16/f32 checkpoint without --quantize nf4 (a bnb-4bit checkpoint cannot be merged or exported)", p.W.Name)
			}
			ts = append(ts, NamedTensor{p.W.Name, []int{p.W.Out, p.W.In}, p.W.F32})
			if p.Bias != nil {
				ts = append(ts, NamedTensor{p.Module + ".bias", []int{p.W.Out}, p.Bias})
			}
			if j == 3 { // after o_proj: the MLP's norm, in HF's module order
				ts = append(ts, NamedTensor{prefix + namePostNorm, []int{H}, l.PostNorm})
			}
		}
	}
	ts = append(ts, NamedTensor{nameNorm, []int{H}, w.Norm})
	if !c.TieWordEmbeddings {
		if w.LMHead.Quant != nil {
			return nil, fmt.Errorf("%s is quantized: it cannot be exported", w.LMHead.Name)
		}
		head, err := w.LMHead.Dense()
		if err != nil {
			return nil, err
		}
		ts = append(ts, NamedTensor{nameLMHead, []int{V, H}, head})
	}
	return ts, nil
}

// MergeLoRA folds an adapter into the float32 projections in place: W' = W + Scaling·B·A for every
// adapted module (W [Out, In], B [Out, r], A [r, In]), as PEFT's merge_and_unload. It refuses NF4
// projections (merging into dequantized NF4 would bake the quantization error into the model) and
// adapters whose modules or shapes do not fit the weights, before changing anything.
func (w *Weights) MergeLoRA(lp *LoRAParams) error {
	if lp == nil {
		return nil
	}
	type job struct {
		p    *Projection
		a, b []float32
	}
	var jobs []job
	known := map[string]bool{}
	for _, l := range w.Layers {
		for _, p := range l.Projections() {
			known[p.Module] = true
			a, okA := lp.A[p.Module]
			b, okB := lp.B[p.Module]
			switch {
			case !okA && !okB:
				continue
			case okA != okB:
				return fmt.Errorf("merge: adapter for %s has only one of lora_A and lora_B", p.Module)
			case p.W.F32 == nil:
				return fmt.Errorf("merge: %s is quantized (NF4): merge from the original bf16/f32 checkpoint (no --quantize nf4, not a bnb-4bit checkpoint)", p.W.Name)
			case len(a) != lp.Rank*p.W.In || len(b) != p.W.Out*lp.Rank:
				return fmt.Errorf("merge: adapter for %s has lora_A %d and lora_B %d values, the model needs %d×%d and %d×%d",
					p.Module, len(a), len(b), lp.Rank, p.W.In, p.W.Out, lp.Rank)
			}
			jobs = append(jobs, job{p, a, b})
		}
	}
	for m := range lp.A {
		if !known[m] {
			return fmt.Errorf("merge: adapter module %s is not a projection of this model", m)
		}
	}
	r, s := lp.Rank, lp.Scaling
	for _, j := range jobs {
		W, In := j.p.W.F32, j.p.W.In // [Out, In]
		parallelFor(j.p.W.Out, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				row := W[o*In : (o+1)*In]
				for k := range r {
					axpy(s*j.b[o*r+k], j.a[k*In:(k+1)*In], row) // row += s·B[o,k]·A[k,:]
				}
			}
		})
	}
	return nil
}

// HFConfigJSON renders c as a Hugging Face Qwen2ForCausalLM config.json whose weights are stored as dtype
// ("bfloat16", "float32"), for models that come without one (the built-in tiny model).
func (c Config) HFConfigJSON(dtype string) ([]byte, error) {
	j := map[string]any{
		"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2",
		"hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize, "num_hidden_layers": c.NumLayers,
		"num_attention_heads": c.NumHeads, "num_key_value_heads": c.NumKVHeads, "vocab_size": c.VocabSize,
		"rms_norm_eps": c.RMSNormEps, "rope_theta": c.RopeTheta, "tie_word_embeddings": c.TieWordEmbeddings,
		"max_position_embeddings": c.MaxPositionEmbeddings, "hidden_act": "silu", "use_sliding_window": false,
		"attention_dropout": 0.0, "torch_dtype": dtype, "use_cache": true,
	}
	if c.HeadDim != c.HiddenSize/c.NumHeads {
		j["head_dim"] = c.HeadDim
	}
	return json.MarshalIndent(j, "", "  ")
}
