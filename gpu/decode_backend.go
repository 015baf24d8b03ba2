//go:build t2mcuda

package gpu

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/model"
)

// gpuGenerator is the t2mcuda build's Generator: a device, one arena holding the weights (and, during
// Generate, the caches and activations) and the decoder.
type gpuGenerator struct {
	d    *cuda.Device
	dec  *decoder
	desc string
}

// decodeReserve is the device memory left outside the arena (cuBLAS workspace, the driver, module code).
const decodeReserve = 1 << 30

// NewGenerator opens GPU 0, takes an arena (address space the size of the card, backed only as used), and
// uploads the weights: bf16 (NF4 dequantized once, LoRA merged) unless opt.NF4PerUse or the bf16 copies would
// leave less than 8 GiB of the free memory for caches and activations.
func (cudaBackend) NewGenerator(w *model.Weights, lora *model.LoRAParams, opt GeneratorOptions) (Generator, error) {
	if w == nil {
		return nil, fmt.Errorf("gpu: generator: no weights")
	}
	d, err := cuda.Open(ordinal())
	if err != nil {
		return nil, err
	}
	g, err := newGPUGenerator(d, w, lora, opt)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return g, nil
}

func newGPUGenerator(d *cuda.Device, w *model.Weights, lora *model.LoRAParams, opt GeneratorOptions) (*gpuGenerator, error) {
	blas, err := d.BLAS()
	if err != nil {
		return nil, err
	}
	free, total, err := d.MemInfo()
	if err != nil {
		return nil, err
	}
	ar, err := cuda.NewArena(d, total) // address space; memory is mapped as the weights and caches need it
	if err != nil {
		return nil, fmt.Errorf("gpu: generator: %w", err)
	}
	c := w.Config
	tables := 2 * int64(c.VocabSize) * int64(c.HiddenSize) * 2
	dense := denseProjectionBytes(w)
	perUse := opt.NF4PerUse || (dense > 0 && tables+dense > free-decodeReserve-8<<30)
	dw, err := loadDecodeWeights(d, blas, ar, w, lora, perUse)
	if err != nil {
		_ = ar.Free()
		return nil, fmt.Errorf("gpu: generator: loading weights: %w", err)
	}
	how := "bf16 weights"
	switch {
	case dense > 0 && perUse:
		how = "NF4 weights kept at 4 bits (fused NF4 GEMV per step, dequantized per use in prefill)"
	case dense > 0:
		how = "NF4 weights dequantized to bf16 at load"
	}
	if lora != nil {
		how += map[bool]string{true: ", LoRA applied unmerged", false: ", LoRA merged"}[perUse]
	}
	desc := fmt.Sprintf("%s (%d MiB): %s, %.2f GiB", d.Name, d.TotalMB, how, cuda.GiB(ar.Peak()))
	return &gpuGenerator{d: d, dec: newDecoder(d, blas, ar, dw, opt.PrefillRows), desc: desc}, nil
}

// Generate decodes prompts greedily on the GPU (model.GenerateGreedy over decoder).
func (g *gpuGenerator) Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error) {
	if err := g.d.Bind(); err != nil {
		return nil, err
	}
	return model.GenerateGreedy(g.dec, prompts, opt)
}

// Describe names the GPU and how the weights are held.
func (g *gpuGenerator) Describe() string { return g.desc }

// Close frees the arena, then the GPU (the context).
func (g *gpuGenerator) Close() error {
	if err := g.d.Bind(); err != nil {
		return err
	}
	err := g.dec.ar.Free()
	if cerr := g.d.Close(); err == nil {
		err = cerr
	}
	return err
}
