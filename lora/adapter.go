package lora

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
)

// Dims gives the base model's input and output size of a projection of a layer
// (in = columns, out = rows of its [out, in] weight); ok is false for a layer or
// module the model does not have.
type Dims func(layer int, module string) (in, out int, ok bool)

// Pair is the LoRA pair of one projection: ΔW = scaling · B·A.
type Pair struct {
	Layer  int       // decoder layer index
	Module string    // short name: q_proj, ..., down_proj
	In     int       // input features of the base projection
	Out    int       // output features of the base projection
	A      []float32 // [r, in] row-major
	B      []float32 // [out, r] row-major
}

// Adapter holds every LoRA pair of a model, keyed by PEFT module path
// (ModulePath(layer, module)).
type Adapter struct {
	Config Config           // with defaults filled
	Pairs  map[string]*Pair // module path → pair
}

// New creates an adapter for layers 0..layers-1 and cfg.Targets: A ~ U(−1/√in, 1/√in)
// — PEFT's kaiming_uniform_(a=√5), whose bound gain·√(3/fan_in) with gain = √(2/(1+5))
// is exactly 1/√in — and B = 0, so the adapted model starts equal to the base. The
// values depend only on seed and each module's path.
func New(cfg Config, layers int, dims Dims, seed uint64) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if layers <= 0 {
		return nil, fmt.Errorf("lora: model has %d layers", layers)
	}
	// Check every projection before allocating anything: a rank past a projection's sizes would not be
	// low-rank, and a huge one would only fail later, out of memory. The message names the projection
	// that bounds the rank.
	bound, boundName, boundIn, boundOut := 0, "", 0, 0
	for l := range layers {
		for _, m := range cfg.Targets {
			in, out, ok := dims(l, m)
			if !ok || in <= 0 || out <= 0 {
				return nil, fmt.Errorf("lora: base model has no %s in layer %d", m, l)
			}
			if boundName == "" || min(in, out) < bound {
				bound, boundName, boundIn, boundOut = min(in, out), fmt.Sprintf("%s of layer %d", m, l), in, out
			}
		}
	}
	if cfg.R > bound {
		return nil, fmt.Errorf("lora: rank r=%d is larger than %s ([out=%d, in=%d]): a LoRA rank must be at most the smaller side of every adapted projection, here %d (pass a smaller --lora-r)",
			cfg.R, boundName, boundOut, boundIn, bound)
	}
	a := &Adapter{Config: cfg, Pairs: map[string]*Pair{}}
	for l := range layers {
		for _, m := range cfg.Targets {
			in, out, ok := dims(l, m)
			if !ok || in <= 0 || out <= 0 {
				return nil, fmt.Errorf("lora: base model has no %s in layer %d", m, l)
			}
			path, _ := ModulePath(l, m)
			p := &Pair{Layer: l, Module: m, In: in, Out: out,
				A: make([]float32, cfg.R*in), B: make([]float32, out*cfg.R)}
			h := fnv.New64a()
			h.Write([]byte(path))
			rng := rand.New(rand.NewPCG(seed, h.Sum64()))
			bound := 1 / math.Sqrt(float64(in))
			for i := range p.A {
				p.A[i] = float32((2*rng.Float64() - 1) * bound)
			}
			a.Pairs[path] = p
		}
	}
	return a, nil
}

// Paths lists the module paths, sorted by layer then module name.
func (a *Adapter) Paths() []string {
	ps := make([]string, 0, len(a.Pairs))
	for p := range a.Pairs {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		x, y := a.Pairs[ps[i]], a.Pairs[ps[j]]
		if x.Layer != y.Layer {
			return x.Layer < y.Layer
		}
		return x.Module < y.Module
	})
	return ps
}

// Pair returns the pair of a projection, or nil when it is not adapted.
func (a *Adapter) Pair(layer int, module string) *Pair {
	path, err := ModulePath(layer, module)
	if err != nil {
		return nil
	}
	return a.Pairs[path]
}

// NumParams is the number of trainable parameters (all A and B elements).
func (a *Adapter) NumParams() int {
	n := 0
	for _, p := range a.Pairs {
		n += len(p.A) + len(p.B)
	}
	return n
}
