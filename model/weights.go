package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand"
	"slices"
	"time"
	"unsafe"

	"github.com/t2m/t2m/safetensors"
)

// Checkpoint tensor names. This file is the only place that spells them.
const (
	nameEmbed    = "model.embed_tokens.weight"
	nameNorm     = "model.norm.weight"
	nameLMHead   = "lm_head.weight"
	nameInNorm   = "input_layernorm.weight"
	namePostNorm = "post_attention_layernorm.weight"
)

// layerPrefix is "model.layers.{i}.".
func layerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// Projection is one frozen linear layer of a decoder layer.
type Projection struct {
	Module string    // module path, e.g. model.layers.0.self_attn.q_proj (PEFT keys and LoRA lookups use it)
	W      *Frozen   // [Out, In]
	Bias   []float32 // [Out] or nil
}

// Layer holds one decoder layer's weights.
type Layer struct {
	InputNorm []float32   // [H]
	Q, K, V   *Projection // [Hq·D, H], [Hkv·D, H], [Hkv·D, H], with biases
	O         *Projection // [H, Hq·D]
	PostNorm  []float32   // [H]
	Gate, Up  *Projection // [I, H]
	Down      *Projection // [H, I]
}

// Projections lists the seven projections in checkpoint order.
func (l *Layer) Projections() []*Projection {
	return []*Projection{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down}
}

// Weights is a whole Qwen2 checkpoint.
type Weights struct {
	Config Config
	Embed  *Frozen // [V, H], float32 or bf16 (LoadOptions.BF16Tables)
	Layers []*Layer
	Norm   []float32 // [H]
	LMHead *Frozen   // [V, H]; Embed itself when the config ties them

	views   bool      // a table views the reader's mapping (LoadOptions.BF16Tables)
	mapping io.Closer // the checkpoint LoadDir keeps open for those views (Close)
}

// Close unmaps the checkpoint that bf16 tables loaded by LoadDir with LoadOptions.BF16Tables are views of;
// the weights must not be used afterwards. Without Close the mapping lives until the process ends (it takes
// address space, and memory only for the pages in use). Weights that hold no view have nothing to close.
func (w *Weights) Close() error {
	if w == nil || w.mapping == nil {
		return nil
	}
	err := w.mapping.Close()
	w.mapping = nil
	return err
}

// projSpec is a projection's module name inside a layer, its shape and whether it has a bias.
type projSpec struct {
	module  string
	out, in int
	bias    bool
}

// projSpecs lists the seven projections of a layer in checkpoint order (q, k, v, o, gate, up, down).
func projSpecs(c Config) []projSpec {
	return []projSpec{
		{"self_attn.q_proj", c.QDim(), c.HiddenSize, true},
		{"self_attn.k_proj", c.KVDim(), c.HiddenSize, true},
		{"self_attn.v_proj", c.KVDim(), c.HiddenSize, true},
		{"self_attn.o_proj", c.HiddenSize, c.QDim(), false},
		{"mlp.gate_proj", c.IntermediateSize, c.HiddenSize, false},
		{"mlp.up_proj", c.IntermediateSize, c.HiddenSize, false},
		{"mlp.down_proj", c.HiddenSize, c.IntermediateSize, false},
	}
}

// setProjections assigns the seven projections in projSpecs order.
func (l *Layer) setProjections(p []*Projection) {
	l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
}

// QuantizeFunc quantizes a projection weight straight from its checkpoint bytes (quant.QuantizeRaw).
type QuantizeFunc func(name string, dt safetensors.DType, raw []byte, shape []int) (Quantized, error)

// LoadOptions choose how weights are held in memory.
type LoadOptions struct {
	// Quantize, when set, quantizes the seven projections of every layer as they are read (QLoRA);
	// embeddings, norms, biases and lm_head stay float32 (or bf16, with BF16Tables).
	Quantize QuantizeFunc
	// BF16Tables keeps the embedding and lm_head as the bfloat16 a checkpoint stores them in (Frozen.BF16)
	// instead of float32: views into the checkpoint's mapping where the host is little-endian (nothing is
	// copied or converted at load, and memory is taken only while the pages are in use; Frozen.Evict drops
	// them after an upload), else copies. The reader must then stay open as long as the weights are used
	// (LoadDir keeps it; Weights.Close ends it). For executors that upload them (the GPU); the CPU ones
	// widen rows (embedding) or the whole table (lm_head) on use.
	BF16Tables bool
	// Log, when set, receives loading progress: the embedding, every few layers with the elapsed time and
	// an ETA, the lm_head.
	Log io.Writer
}

// loader reads tensors by name from a checkpoint, checking shapes; errors name tensor and file.
type loader struct {
	r     safetensors.Reader
	file  string
	views bool // a table views the mapping: the reader must outlive the weights
}

func (ld *loader) info(name string, shape ...int) (safetensors.TensorInfo, error) {
	info, err := ld.r.Info(name)
	if err != nil {
		return info, fmt.Errorf("checkpoint %s: tensor %s: %w", ld.file, name, err)
	}
	if !slices.Equal(info.Shape, shape) {
		return info, fmt.Errorf("checkpoint %s: tensor %s has shape %v, the config says %v", ld.file, name, info.Shape, shape)
	}
	return info, nil
}

// table reads a [rows, cols] table (the embedding, lm_head): as float32, or, with keepBF16 and a bf16
// checkpoint tensor, as its bf16 bits: a view of the mapping (viewBF16), else a copy.
func (ld *loader) table(name string, rows, cols int, keepBF16 bool) (*Frozen, error) {
	info, err := ld.info(name, rows, cols)
	if err != nil {
		return nil, err
	}
	f := &Frozen{Name: name, Out: rows, In: cols}
	if !keepBF16 || info.DType != safetensors.BF16 {
		f.F32, err = ld.float32(name, rows, cols)
		return f, err
	}
	raw, err := ld.r.Raw(name)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", ld.file, name, err)
	}
	if len(raw) != 2*rows*cols {
		return nil, fmt.Errorf("checkpoint %s: tensor %s has %d bytes, want %d", ld.file, name, len(raw), 2*rows*cols)
	}
	if f.BF16 = viewBF16(raw); f.BF16 != nil { // [rows, cols], in the mapping
		ld.views = true
		if rel, ok := ld.r.(safetensors.Releaser); ok {
			f.evict = func() error { return rel.Release(name) }
		}
		return f, nil
	}
	f.BF16 = make([]uint16, rows*cols) // [rows, cols]
	for i := range f.BF16 {
		f.BF16[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8 // little-endian
	}
	return f, ld.release(name)
}

func (ld *loader) float32(name string, shape ...int) ([]float32, error) {
	if _, err := ld.info(name, shape...); err != nil {
		return nil, err
	}
	v, err := ld.r.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", ld.file, name, err)
	}
	return v, ld.release(name)
}

// release drops a converted tensor's pages of the mapped checkpoint from the process (safetensors.Releaser),
// so loading holds the model being built and one tensor of the file, not every page read so far.
func (ld *loader) release(name string) error {
	if rel, ok := ld.r.(safetensors.Releaser); ok {
		if err := rel.Release(name); err != nil {
			return fmt.Errorf("checkpoint %s: tensor %s: %w", ld.file, name, err)
		}
	}
	return nil
}

func (ld *loader) projection(prefix string, s projSpec, q QuantizeFunc) (*Projection, error) {
	p := &Projection{Module: prefix + s.module}
	name := p.Module + ".weight"
	p.W = &Frozen{Name: name, Out: s.out, In: s.in}
	bnb, isBNB, err := ld.loadBNB(name, s.out, s.in)
	switch {
	case err != nil:
		return nil, err
	case isBNB:
		p.W.Quant = bnb
	case q != nil:
		info, err := ld.info(name, s.out, s.in)
		if err != nil {
			return nil, err
		}
		raw, err := ld.r.Raw(name)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", ld.file, name, err)
		}
		if p.W.Quant, err = q(name, info.DType, raw, info.Shape); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", ld.file, err)
		}
		if err := ld.release(name); err != nil {
			return nil, err
		}
	default:
		if p.W.F32, err = ld.float32(name, s.out, s.in); err != nil {
			return nil, err
		}
	}
	if s.bias {
		if p.Bias, err = ld.float32(p.Module+".bias", s.out); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// LoadWeights reads every tensor the config needs from r (a safetensors File or Dir; file names it in
// errors). Tensors are converted one at a time from the memory-mapped checkpoint, so the float32 model
// (or the NF4 one, with opt.Quantize) is the only full copy in memory.
func LoadWeights(r safetensors.Reader, file string, cfg Config, opt LoadOptions) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ld := &loader{r: r, file: file}
	w := &Weights{Config: cfg}
	H, V := cfg.HiddenSize, cfg.VocabSize
	var err error
	start := time.Now()
	progress := func(format string, a ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "loading: "+format+"  elapsed %s\n", append(a, time.Since(start).Round(100*time.Millisecond))...)
		}
	}
	if w.Embed, err = ld.table(nameEmbed, V, H, opt.BF16Tables); err != nil {
		return nil, err
	}
	progress("embedding [%d, %d]", V, H)
	layersStart := time.Now()
	every := max(1, cfg.NumLayers/7)
	for i := range cfg.NumLayers {
		if i > 0 && i%every == 0 {
			eta := time.Duration(float64(time.Since(layersStart)) / float64(i) * float64(cfg.NumLayers-i))
			progress("layer %d/%d  ETA %s", i, cfg.NumLayers, eta.Round(100*time.Millisecond))
		}
		prefix := layerPrefix(i)
		l := &Layer{}
		if l.InputNorm, err = ld.float32(prefix+nameInNorm, H); err != nil {
			return nil, err
		}
		if l.PostNorm, err = ld.float32(prefix+namePostNorm, H); err != nil {
			return nil, err
		}
		var projs []*Projection
		for _, s := range projSpecs(cfg) {
			p, err := ld.projection(prefix, s, opt.Quantize)
			if err != nil {
				return nil, err
			}
			projs = append(projs, p)
		}
		l.setProjections(projs)
		w.Layers = append(w.Layers, l)
	}
	if w.Norm, err = ld.float32(nameNorm, H); err != nil {
		return nil, err
	}
	progress("%d layers", cfg.NumLayers)
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
	} else {
		if w.LMHead, err = ld.table(nameLMHead, V, H, opt.BF16Tables); err != nil {
			return nil, err
		}
		progress("lm_head [%d, %d]", V, H)
	}
	w.views = ld.views
	return w, nil
}

// LoadDir reads dir/config.json and the checkpoint in dir (model.safetensors or shards with
// model.safetensors.index.json).
func LoadDir(dir string, opt LoadOptions) (*Weights, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	r, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint in %s: %w", dir, err)
	}
	w, err := LoadWeights(r, dir, cfg, opt)
	if err != nil {
		r.Close()
		return nil, err
	}
	if w.views {
		w.mapping = r // the tables view it
		return w, nil
	}
	return w, r.Close()
}

// viewBF16 views little-endian bf16 bytes as []uint16 without copying, or returns nil where that would
// not read the same values (a big-endian host) or is not allowed (an odd address).
func viewBF16(raw []byte) []uint16 {
	if len(raw) < 2 || binary.NativeEndian.Uint16([]byte{1, 0}) != 1 || uintptr(unsafe.Pointer(&raw[0]))%2 != 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), len(raw)/2)
}

// RandomWeights generates a model from a seed, for the built-in tiny model and tests: projections
// ~ N(0, 1/in), embeddings ~ N(0, 0.25), norm weights 1 + N(0, 0.01), biases ~ N(0, 0.01). With
// opt.Quantize the projections are quantized as a checkpoint's would be.
func RandomWeights(cfg Config, seed int64, opt LoadOptions) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(seed))
	normal := func(n int, mean, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		return v
	}
	H, V := cfg.HiddenSize, cfg.VocabSize
	w := &Weights{Config: cfg, Embed: &Frozen{Name: nameEmbed, Out: V, In: H, F32: normal(V*H, 0, 0.5)}}
	for i := range cfg.NumLayers {
		l := &Layer{InputNorm: normal(H, 1, 0.1), PostNorm: normal(H, 1, 0.1)}
		var projs []*Projection
		for _, s := range projSpecs(cfg) {
			p := &Projection{Module: layerPrefix(i) + s.module}
			p.W = &Frozen{Name: p.Module + ".weight", Out: s.out, In: s.in, F32: normal(s.out*s.in, 0, 1/math.Sqrt(float64(s.in)))}
			if s.bias {
				p.Bias = normal(s.out, 0, 0.1)
			}
			if opt.Quantize != nil {
				raw := make([]byte, 4*len(p.W.F32))
				for j, f := range p.W.F32 {
					bits := math.Float32bits(f)
					raw[4*j], raw[4*j+1], raw[4*j+2], raw[4*j+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
				}
				q, err := opt.Quantize(p.W.Name, safetensors.F32, raw, []int{s.out, s.in})
				if err != nil {
					return nil, err
				}
				p.W.F32, p.W.Quant = nil, q
			}
			projs = append(projs, p)
		}
		l.setProjections(projs)
		w.Layers = append(w.Layers, l)
	}
	w.Norm = normal(H, 1, 0.1)
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
	} else {
		w.LMHead = &Frozen{Name: nameLMHead, Out: V, In: H, F32: normal(V*H, 0, 1/math.Sqrt(float64(H)))}
	}
	return w, nil
}

// RandomLoRA gives every projection of w an adapter of rank r with scaling 2 and values std·normal() in A
// and B (B non-zero, so the branch counts), drawn A then B, projection by projection: for tests and
// benchmarks (normal is a generator's NormFloat64).
func RandomLoRA(w *Weights, r int, std float64, normal func() float64) *LoRAParams {
	p := &LoRAParams{Rank: r, Scaling: 2, A: map[string][]float32{}, B: map[string][]float32{}}
	for _, l := range w.Layers {
		for _, pr := range l.Projections() {
			a, b := make([]float32, r*pr.W.In), make([]float32, pr.W.Out*r) // [r, in], [out, r]
			for i := range a {
				a[i] = float32(normal() * std)
			}
			for i := range b {
				b[i] = float32(normal() * std)
			}
			p.A[pr.Module], p.B[pr.Module] = a, b
		}
	}
	return p
}

// Tensors lists the float32 weights under their checkpoint names, as safetensors.Write takes them
// (quantized projections are written dequantized). A tied lm_head is not listed.
func (w *Weights) Tensors() ([]safetensors.Tensor, error) {
	c := w.Config
	f32 := func(name string, v []float32, shape ...int) safetensors.Tensor {
		return safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: safetensors.F32Bytes(v)}
	}
	embed, err := w.Embed.Dense()
	if err != nil {
		return nil, err
	}
	ts := []safetensors.Tensor{f32(nameEmbed, embed, c.VocabSize, c.HiddenSize), f32(nameNorm, w.Norm, c.HiddenSize)}
	for i, l := range w.Layers {
		ts = append(ts, f32(layerPrefix(i)+nameInNorm, l.InputNorm, c.HiddenSize), f32(layerPrefix(i)+namePostNorm, l.PostNorm, c.HiddenSize))
		for _, p := range l.Projections() {
			d, err := p.W.Dense()
			if err != nil {
				return nil, err
			}
			ts = append(ts, f32(p.W.Name, d, p.W.Out, p.W.In))
			if p.Bias != nil {
				ts = append(ts, f32(p.Module+".bias", p.Bias, p.W.Out))
			}
		}
	}
	if !c.TieWordEmbeddings {
		d, err := w.LMHead.Dense()
		if err != nil {
			return nil, err
		}
		ts = append(ts, f32(nameLMHead, d, c.VocabSize, c.HiddenSize))
	}
	return ts, nil
}

// NamedVector is a float32 weight with its checkpoint name.
type NamedVector struct {
	Name   string
	Values []float32
}

// Vectors lists the weights the model definition passes to Ops.RMSNorm, under the names it passes with them:
// each layer's two norm weights [H] and the final norm [H]. (The embedding table is Embed, a Frozen under its
// own Name.) An executor that keeps device copies uploads these and finds them by name.
func (w *Weights) Vectors() []NamedVector {
	var vs []NamedVector
	for i, l := range w.Layers {
		vs = append(vs, NamedVector{layerPrefix(i) + nameInNorm, l.InputNorm}, NamedVector{layerPrefix(i) + namePostNorm, l.PostNorm})
	}
	return append(vs, NamedVector{nameNorm, w.Norm})
}
