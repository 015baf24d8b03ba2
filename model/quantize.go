package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/t2m/t2m/internal/rng"
	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// QuantizeNF4 is the QuantizeFunc of --quantize nf4: blockwise NF4 (blocks of 64) with double-quantized
// absmax in the bitsandbytes layout, computed straight from the checkpoint bytes (quant.QuantizeRaw).
func QuantizeNF4(name string, dt safetensors.DType, raw []byte, shape []int) (Quantized, error) {
	w, err := quant.QuantizeRaw(name, dt, raw, shape)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// loadBNB reads a projection stored pre-quantized by bitsandbytes (bnb-4bit checkpoints), reporting
// false when the checkpoint holds it unquantized.
func (ld *loader) loadBNB(name string, out, in int) (Quantized, bool, error) {
	if !quant.IsBNB(ld.r, name) {
		return nil, false, nil
	}
	w, err := quant.LoadBNB(ld.r, name)
	if err != nil {
		return nil, true, fmt.Errorf("checkpoint %s: %w", ld.file, err)
	}
	if !slices.Equal(w.Shape, []int{out, in}) {
		return nil, true, fmt.Errorf("checkpoint %s: tensor %s is quantized with shape %v, the config says [%d %d]", ld.file, name, w.Shape, out, in)
	}
	return w, true, nil
}

// RandomNF4Weights makes a model of cfg's shape for benchmarks, fast at any size: every projection a random
// NF4 matrix (quant.Random, absmax about 1/√in), biases and embeddings small, norm weights 1, lm_head untied
// float32. The values are meaningless; the layout and sizes are those of a quantized checkpoint.
func RandomNF4Weights(cfg Config, seed uint64) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	H, V := cfg.HiddenSize, cfg.VocabSize
	small := func(n int, s uint64, scale float32) []float32 {
		v := make([]float32, n)
		parallelFor(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				v[i] = scale * (float32(rng.SplitMix64(s^uint64(i))>>40)/(1<<23) - 1)
			}
		})
		return v
	}
	ones := func() []float32 {
		v := make([]float32, H)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	w := &Weights{Config: cfg, Embed: &Frozen{Name: nameEmbed, Out: V, In: H, F32: small(V*H, seed, 0.05)}, Norm: ones()}
	for i := range cfg.NumLayers {
		l := &Layer{InputNorm: ones(), PostNorm: ones()}
		var projs []*Projection
		for j, s := range projSpecs(cfg) {
			p := &Projection{Module: layerPrefix(i) + s.module}
			q, err := quant.Random([]int{s.out, s.in}, seed+uint64(1+i*16+j), 2.8/float32(math.Sqrt(float64(s.in))))
			if err != nil {
				return nil, err
			}
			p.W = &Frozen{Name: p.Module + ".weight", Out: s.out, In: s.in, Quant: q}
			if s.bias {
				p.Bias = small(s.out, seed^uint64(i*16+j), 0.02)
			}
			projs = append(projs, p)
		}
		l.setProjections(projs)
		w.Layers = append(w.Layers, l)
	}
	w.LMHead = &Frozen{Name: nameLMHead, Out: V, In: H, F32: small(V*H, ^seed, 0.05)}
	return w, nil
}
