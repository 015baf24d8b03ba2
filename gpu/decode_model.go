//go:build t2mcuda

package gpu

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/machine"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
)

// decodeLinear is the device copy of one frozen projection: y = x·Wᵀ + b (+ s·(x·Aᵀ)·Bᵀ when not merged).
type decodeLinear struct {
	name    string
	out, in int
	dense   cuda.Buffer    // [out, in] bf16 (NF4 dequantized at load, LoRA merged), or zero when nf4 is set
	nf4     *ops.NF4Weight // kept quantized, dequantized into the shared scratch per use
	bias    cuda.Buffer    // [out] bf16, or zero
	a, b    cuda.Buffer    // LoRA A [rank, in], B [out, rank] bf16 when applied per use, else zero
	rank    int
	scale   float32
}

// decodeWeights are device copies of a model.Weights' tensors, carved from one arena and found by the names
// the model definition passes to its ops (model.Weights.Vectors' names, projection module paths). The model's
// structure stays in model.Weights: the decoder executes model.Forward over it.
type decodeWeights struct {
	w       *model.Weights
	vecs    map[string]cuda.Buffer   // embedding [V, H] and norm weights [H], bf16, by checkpoint name
	lins    map[string]*decodeLinear // projections by module path
	lmHead  cuda.Buffer              // [V, H] bf16
	scratch cuda.Buffer              // [largest out·in] bf16 for NF4 dequantized per use; zero when every weight is dense
	perUse  bool                     // NF4 projections stay NF4 (dequantized per use) and LoRA is applied unmerged
}

// vec returns the device copy of the vector named name.
func (dw *decodeWeights) vec(name string) (cuda.Buffer, error) {
	b, ok := dw.vecs[name]
	if !ok {
		return cuda.Buffer{}, fmt.Errorf("gpu: decoder: no device copy of %s", name)
	}
	return b, nil
}

// linear returns the device copy of the projection p.
func (dw *decodeWeights) linear(p *model.Projection) (*decodeLinear, error) {
	l, ok := dw.lins[p.Module]
	if !ok {
		return nil, fmt.Errorf("gpu: decoder: no device copy of %s", p.Module)
	}
	return l, nil
}

// denseProjectionBytes is what the NF4 projections of w take as bf16.
func denseProjectionBytes(w *model.Weights) int64 {
	var n int64
	for _, l := range w.Layers {
		for _, p := range l.Projections() {
			if p.W.Quant != nil {
				n += int64(p.W.Out) * int64(p.W.In) * 2
			}
		}
	}
	return n
}

// loadDecodeWeights uploads w (and lora, nil for the base model) into ar. perUse keeps NF4 projections
// quantized (dequantized per use, LoRA unmerged); otherwise NF4 is dequantized once to bf16 here and each
// adapter is merged into its weight, W += s·B·A (one bf16 rounding of W + s·B·A, fp32 accumulation).
func loadDecodeWeights(d *cuda.Device, blas *cuda.BLAS, ar *cuda.Arena, w *model.Weights, lora *model.LoRAParams, perUse bool) (*decodeWeights, error) {
	c := w.Config
	dw := &decodeWeights{w: w, perUse: perUse, vecs: map[string]cuda.Buffer{}, lins: map[string]*decodeLinear{}}
	// The embedding table, as bf16 (device copies are found by name).
	emb, err := ar.Alloc(int64(c.VocabSize)*int64(c.HiddenSize)*2, w.Embed.Name)
	if err != nil {
		return nil, err
	}
	if err := frozenToDense(d, ar, w.Embed, emb); err != nil {
		return nil, err
	}
	dw.vecs[w.Embed.Name] = emb
	for _, v := range w.Vectors() {
		b, err := ar.Alloc(int64(len(v.Values))*2, v.Name)
		if err != nil {
			return nil, err
		}
		if err := cuda.UploadBF16(d, b, v.Values); err != nil {
			return nil, err
		}
		dw.vecs[v.Name] = b
	}
	// lm_head is always dense: it is read whole every step.
	if dw.lmHead, err = ar.Alloc(int64(c.VocabSize)*int64(c.HiddenSize)*2, "lm_head"); err != nil {
		return nil, err
	}
	if err := frozenToDense(d, ar, w.LMHead, dw.lmHead); err != nil {
		return nil, err
	}
	maxW := 0
	for li, l := range w.Layers {
		for _, p := range l.Projections() {
			lin, err := loadDecodeLinear(d, blas, ar, p, lora, perUse)
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", li, err)
			}
			if lin.nf4 != nil {
				maxW = max(maxW, lin.out*lin.in)
			}
			dw.lins[p.Module] = lin
		}
	}
	if maxW > 0 {
		if dw.scratch, err = ar.Alloc(int64(maxW)*2, "NF4 dequant scratch"); err != nil {
			return nil, err
		}
	}
	return dw, d.Sync()
}

// frozenToDense writes f as bf16 [Out, In] into dst: float32 or bf16 as machine.UploadTable writes them, NF4
// dequantized on the device (its blocks uploaded after dst and released again).
func frozenToDense(d *cuda.Device, ar *cuda.Arena, f *model.Frozen, dst cuda.Buffer) error {
	if f.Quant == nil {
		return machine.UploadTable(d, dst, f)
	}
	mark := ar.Mark()
	defer ar.Release(mark)
	nw, err := ops.UploadQuantized(d, ar, f.Quant, f.Name)
	if err != nil {
		return err
	}
	if err := ops.DequantNF4(d, nw, dst); err != nil {
		return err
	}
	return d.Sync() // the NF4 blocks are released on return
}

// loadDecodeLinear uploads one projection (see loadDecodeWeights).
func loadDecodeLinear(d *cuda.Device, blas *cuda.BLAS, ar *cuda.Arena, p *model.Projection, lora *model.LoRAParams, perUse bool) (*decodeLinear, error) {
	f := p.W
	lin := &decodeLinear{name: f.Name, out: f.Out, in: f.In}
	var err error
	if p.Bias != nil {
		if lin.bias, err = ar.Alloc(int64(len(p.Bias))*2, f.Name+" bias"); err != nil {
			return nil, err
		}
		if err := cuda.UploadBF16(d, lin.bias, p.Bias); err != nil {
			return nil, err
		}
	}
	var a, b []float32
	if lora != nil {
		a, b = lora.A[p.Module], lora.B[p.Module]
		if (a == nil) != (b == nil) || (a != nil && (len(a) != lora.Rank*f.In || len(b) != f.Out*lora.Rank)) {
			return nil, fmt.Errorf("gpu: adapter for %s: lora_A %d and lora_B %d values, want %d×%d and %d×%d",
				p.Module, len(a), len(b), lora.Rank, f.In, f.Out, lora.Rank)
		}
	}
	if perUse && f.Quant != nil {
		if lin.nf4, err = ops.UploadQuantized(d, ar, f.Quant, f.Name); err != nil {
			return nil, err
		}
	} else {
		if lin.dense, err = ar.Alloc(int64(f.Out)*int64(f.In)*2, f.Name); err != nil {
			return nil, err
		}
		if err := frozenToDense(d, ar, f, lin.dense); err != nil {
			return nil, err
		}
	}
	if a == nil {
		return lin, nil
	}
	lin.rank, lin.scale = lora.Rank, lora.Scaling
	if perUse {
		if lin.a, err = ar.Alloc(int64(len(a))*2, p.Module+" lora_A"); err != nil {
			return nil, err
		}
		if lin.b, err = ar.Alloc(int64(len(b))*2, p.Module+" lora_B"); err != nil {
			return nil, err
		}
		if err := cuda.UploadBF16(d, lin.a, a); err != nil {
			return nil, err
		}
		return lin, cuda.UploadBF16(d, lin.b, b)
	}
	// Merge: W += s·B·A, with A and B uploaded after W and released again.
	mark := ar.Mark()
	defer ar.Release(mark)
	ab, err := ar.Alloc(int64(len(a))*2, "lora_A")
	if err != nil {
		return nil, err
	}
	bb, err := ar.Alloc(int64(len(b))*2, "lora_B")
	if err != nil {
		return nil, err
	}
	if err := cuda.UploadBF16(d, ab, a); err != nil {
		return nil, err
	}
	if err := cuda.UploadBF16(d, bb, b); err != nil {
		return nil, err
	}
	if err := blas.Gemm(false, false, lora.Scaling, cuda.M(bb, f.Out, lora.Rank, cuda.BF16T), cuda.M(ab, lora.Rank, f.In, cuda.BF16T),
		1, cuda.M(lin.dense, f.Out, f.In, cuda.BF16T)); err != nil {
		return nil, fmt.Errorf("gpu: merging the adapter of %s: %w", p.Module, err)
	}
	return lin, d.Sync()
}
