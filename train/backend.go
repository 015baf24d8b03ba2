package train

import (
	"container/list"
	"fmt"
	"sort"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/t2m/t2m/model"
)

// Params are the trainable LoRA matrices in a fixed order: for module i, A is Values[2i] [r, in] and B
// is Values[2i+1] [out, r]. The slices are shared with the LoRAParams the backend reads, so an optimizer
// update in place is what the next step sees.
type Params struct {
	Modules []string    // module paths (model.layers.0.self_attn.q_proj, ...), sorted
	Values  [][]float32 // A, B of each module in turn
	LoRA    *model.LoRAParams
}

// NewParams orders the adapter's matrices by module path.
func NewParams(lora *model.LoRAParams) *Params {
	p := &Params{LoRA: lora}
	for m := range lora.A {
		p.Modules = append(p.Modules, m)
	}
	sort.Strings(p.Modules)
	for _, m := range p.Modules {
		p.Values = append(p.Values, lora.A[m], lora.B[m])
	}
	return p
}

// Sizes are the element counts of Values.
func (p *Params) Sizes() []int {
	s := make([]int, len(p.Values))
	for i, v := range p.Values {
		s[i] = len(v)
	}
	return s
}

// Backend runs the model for training and evaluation losses.
type Backend interface {
	// Name says where it runs ("cpu", "cuda: NVIDIA H100 ...").
	Name() string
	// Loss computes the completion-only loss of one micro-batch (b.NumItems: the completion tokens of
	// its accumulation window). With grads non-nil it also adds d loss / d Values[i] into grads[i] (same
	// order as Params.Values) and applies LoRA dropout seeded by dropoutStep; with grads nil it is an
	// evaluation: no dropout, no gradients.
	Loss(b model.Batch, batch, seq int, dropoutStep uint64, grads [][]float32) (float32, error)
	// Close frees what the backend holds.
	Close() error
}

// ShapeReserver is a Backend that plans its memory for one (batch, seq) shape (the CUDA machine). Reserve
// gives it the largest micro-batch of the run (batch size × the longest sequence rounded up to the bucket)
// before the first Loss; every micro-batch then runs at its own, smaller or equal, shape on those buffers,
// with the CPU's losses, gradients and dropout masks.
type ShapeReserver interface {
	Reserve(batch, seq int) error
}

// Recomputer is a Backend that can trade compute for memory (gradient checkpointing): with recomputation
// on, the forward keeps only each layer's input and the backward computes the layer's activations again.
// Losses and gradients are unchanged. SetRecompute comes before Reserve.
type Recomputer interface {
	SetRecompute(on bool) error
}

// GEMMTuner is a Backend that can choose its matrix products' algorithms for the micro-batch sizes of a run
// before its first update (the CUDA machine: cuBLASLt algorithms with cuBLAS's default bits, so losses and
// gradients are unchanged). tokens are the distinct padded sizes (rows × length) the updates will have;
// the summary is one line for the log.
type GEMMTuner interface {
	TuneGEMMs(tokens []int) (summary string, err error)
}

// WeightCacher is a Backend that can keep dequantized copies of its quantized frozen weights, up to bytes of
// device memory, to skip their dequantization at each use (the CUDA machine). Results are unchanged: the
// copies are what each use would dequantize. SetWeightCache comes before Reserve.
type WeightCacher interface {
	SetWeightCache(bytes int64) error
}

// DefaultWeightCacheGiB is `t2m train`'s and `t2m bench train`'s default --weight-cache-gib: on the 7B at
// B=4, max-len 512 it holds every k, v, q and o projection and three MLP weights (1.9 GiB), and the whole
// process stays under 16 GiB of GPU memory.
const DefaultWeightCacheGiB = 2

// HostTimer is a Backend that splits its last micro-batch's wall time into launching the device's work (the
// host's part) and then waiting for the device to finish it (the CUDA machine).
type HostTimer interface {
	HostTimes() (launch, wait time.Duration)
}

// BackendFactory makes a backend for these weights and trainable parameters (p.LoRA.Dropout is the
// training dropout). Each Device of the registry (registry.go) has one.
type BackendFactory func(w *model.Weights, p *Params) (Backend, error)

// cpuGraphCache is how many compiled graphs per kind (training, evaluation) the CPU backend keeps: each
// holds the activations of its shape, so the least recently used is dropped beyond this.
const cpuGraphCache = 3

// cpuBackend runs model graphs with gorgonia's TapeMachine, one graph per (batch, seq) shape.
type cpuBackend struct {
	w           *model.Weights
	p           *Params
	train, eval *graphCache
}

func newCPUBackend(w *model.Weights, p *Params) (Backend, error) {
	evalLoRA := *p.LoRA
	evalLoRA.Dropout = 0 // evaluation graphs: model.eval(), no dropout
	b := &cpuBackend{w: w, p: p}
	mode := model.TrainingLossMode() // head rows unless T2M_HEAD_ROWS=0, as the GPU backend
	b.train = newGraphCache(func(batch, seq int) (*model.Graph, error) {
		g, err := model.Build(w, p.LoRA, batch, seq, mode)
		if err != nil {
			return nil, err
		}
		if err := g.BuildGrad(); err != nil {
			g.Close()
			return nil, err
		}
		return g, nil
	})
	b.eval = newGraphCache(func(batch, seq int) (*model.Graph, error) {
		return model.Build(w, &evalLoRA, batch, seq, mode)
	})
	return b, nil
}

func (b *cpuBackend) Name() string { return "cpu" }

func (b *cpuBackend) Loss(mb model.Batch, batch, seq int, dropoutStep uint64, grads [][]float32) (float32, error) {
	cache := b.eval
	if grads != nil {
		cache = b.train
	}
	g, err := cache.get(batch, seq)
	if err != nil {
		return 0, fmt.Errorf("cpu backend: graph for [%d, %d]: %w", batch, seq, err)
	}
	// Bind the current parameter values (the optimizer updates the slices in place).
	for _, l := range g.LoRA {
		a, bm := b.p.LoRA.A[l.Module], b.p.LoRA.B[l.Module]
		if err := G.Let(l.A, tensor.New(tensor.WithShape(l.A.Shape()...), tensor.WithBacking(a))); err != nil {
			return 0, fmt.Errorf("cpu backend: binding %s.lora_A: %w", l.Module, err)
		}
		if err := G.Let(l.B, tensor.New(tensor.WithShape(l.B.Shape()...), tensor.WithBacking(bm))); err != nil {
			return 0, fmt.Errorf("cpu backend: binding %s.lora_B: %w", l.Module, err)
		}
	}
	g.SetStep(dropoutStep)
	if err := g.Run(mb); err != nil {
		return 0, fmt.Errorf("cpu backend: %w", err)
	}
	lv, err := model.Values(g.Loss)
	if err != nil || len(lv) != 1 {
		return 0, fmt.Errorf("cpu backend: reading the loss: %v", err)
	}
	if grads == nil {
		return lv[0], nil
	}
	index := make(map[string]int, len(b.p.Modules))
	for i, m := range b.p.Modules {
		index[m] = i
	}
	for _, l := range g.LoRA {
		i, ok := index[l.Module]
		if !ok {
			return 0, fmt.Errorf("cpu backend: graph has LoRA on %s, which is not a trained parameter", l.Module)
		}
		for k, node := range []*G.Node{l.GradA, l.GradB} {
			d, err := model.Values(node)
			if err != nil {
				return 0, fmt.Errorf("cpu backend: gradient of %s: %w", l.Module, err)
			}
			dst := grads[2*i+k]
			if len(d) != len(dst) {
				return 0, fmt.Errorf("cpu backend: gradient of %s has %d values, want %d", l.Module, len(d), len(dst))
			}
			for j, x := range d {
				dst[j] += x
			}
		}
	}
	return lv[0], nil
}

func (b *cpuBackend) Close() error {
	b.train.close()
	b.eval.close()
	return nil
}

// graphCache keeps the most recently used graphs by shape.
type graphCache struct {
	build func(batch, seq int) (*model.Graph, error)
	order *list.List // of *cachedGraph, most recent first
}

type cachedGraph struct {
	batch, seq int
	g          *model.Graph
}

func newGraphCache(build func(batch, seq int) (*model.Graph, error)) *graphCache {
	return &graphCache{build: build, order: list.New()}
}

func (c *graphCache) get(batch, seq int) (*model.Graph, error) {
	for e := c.order.Front(); e != nil; e = e.Next() {
		if cg := e.Value.(*cachedGraph); cg.batch == batch && cg.seq == seq {
			c.order.MoveToFront(e)
			return cg.g, nil
		}
	}
	g, err := c.build(batch, seq)
	if err != nil {
		return nil, err
	}
	c.order.PushFront(&cachedGraph{batch: batch, seq: seq, g: g})
	for c.order.Len() > cpuGraphCache {
		e := c.order.Back()
		e.Value.(*cachedGraph).g.Close()
		c.order.Remove(e)
	}
	return g, nil
}

func (c *graphCache) close() {
	for e := c.order.Front(); e != nil; e = e.Next() {
		e.Value.(*cachedGraph).g.Close()
	}
	c.order.Init()
}
