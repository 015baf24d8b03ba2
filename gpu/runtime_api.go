package gpu

import (
	"fmt"
	"os"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// ErrNoCUDA is what a binary built without the t2mcuda tag answers to every GPU request (train.ErrNoCUDA,
// which the device registry gives for a missing "cuda").
var ErrNoCUDA = train.ErrNoCUDA

// Backend is the GPU as the t2mcuda build offers it (t2m bench gpu reaches it through Get). The t2mcuda build registers one at init,
// and with it the "cuda" entry of train's device registry, through which the pipelines train and
// generate. Packages outside gpu/ never import gorgonia.org/cu, so the default build runs everywhere.
type Backend interface {
	// Describe opens the first GPU and returns one line about it (name, memory, driver).
	Describe() (string, error)
	// NewGenerator opens the first GPU and uploads w (with lora applied; nil for the base model) for greedy
	// decoding; Close the generator to free the GPU.
	NewGenerator(w *model.Weights, lora *model.LoRAParams, opt GeneratorOptions) (Generator, error)
}

// Generator decodes greedily on a GPU with the semantics of model.Generator.Generate: argmax (first index
// on ties), a sequence ends after one of opt.StopIDs (not included) or opt.MaxNewTokens tokens.
type Generator interface {
	Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error)
	// Describe is one line: the GPU and how the weights are held.
	Describe() string
	Close() error
}

// GeneratorOptions tune NewGenerator.
type GeneratorOptions struct {
	// NF4PerUse keeps NF4 projections quantized on the GPU, the adapter's A and B apart: a third of the
	// weight memory. Decode steps of up to ops.NF4GEMMMaxRows sequences multiply straight from the codes on
	// tensor cores (ops.NF4GEMVFused, the bias and the adapter's x·Aᵀ·Bᵀ·s in the same kernel); larger
	// forwards (prefill, large steps) dequantize each weight before its GEMM and add the adapter's s·(x·Aᵀ)·Bᵀ
	// to its product (ops.Linear), as PEFT's unmerged forward does. Otherwise NF4 is dequantized to bf16 once at load
	// and each adapter is merged into its weight; NewGenerator keeps NF4 anyway when those copies would not
	// fit. The device registry's generator (t2m baseline, eval, bench generate) sets it unless the
	// environment has T2M_GPU_WEIGHTS=bf16: at the default generation batch (96) NF4 kept decodes the 594
	// published examples in 14.7 s in 9.9 GB of GPU memory on an H200 (the bf16 copies took 17.6 s and 19.1 GB
	// when NF4 kept took 18.7 s; scripts/bench/NOTES.md, gpu/DECODE_NOTES.md).
	NF4PerUse bool
	// PrefillRows bounds the tokens of one prefill (≤ 0: 8192); prompts of equal length are prefilled
	// together up to it.
	PrefillRows int
}

var backend Backend

// deviceFuncs are the "cuda" device's entries that the t2mcuda build adds to its Backend.
type deviceFuncs struct {
	newTrain      train.BackendFactory
	newCollective func(rank, world, localRank int, addr string) (train.Collective, error)
	count         func() (int, error)
	newQuantizer  func() (model.QuantizeFunc, func() error, error)
}

// register is called by the t2mcuda build's init with its Backend and the other entries: it keeps b for Get
// and enters the "cuda" device into train's registry (training: f.newTrain; generation: b.NewGenerator with
// default options; usability: b.Describe; data parallel: f.newCollective and f.count; load-time
// quantization: f.newQuantizer).
func register(b Backend, f deviceFuncs) {
	backend = b
	train.RegisterDevice(train.Device{
		Name:       "cuda",
		Describe:   b.Describe,
		NewBackend: f.newTrain,
		NewGenerator: func(w *model.Weights, lora *model.LoRAParams) (train.Generator, error) {
			perUse, err := weightsFromEnv()
			if err != nil {
				return nil, err
			}
			g, err := b.NewGenerator(w, lora, GeneratorOptions{NF4PerUse: perUse})
			if err != nil {
				return nil, err // a nil gpu.Generator must not become a non-nil train.Generator
			}
			return g, nil
		},
		NewCollective: f.newCollective,
		Count:         f.count,
		NewQuantizer:  f.newQuantizer,
	})
}

// Get returns the registered GPU backend, or ErrNoCUDA in a build without CUDA.
func Get() (Backend, error) {
	if backend == nil {
		return nil, ErrNoCUDA
	}
	return backend, nil
}

// weightsFromEnv reads T2M_GPU_WEIGHTS, how the generator holds NF4 weights: "nf4" or unset keeps them at 4
// bits (GeneratorOptions.NF4PerUse), "bf16" dequantizes them once at load.
func weightsFromEnv() (nf4 bool, err error) {
	switch v := os.Getenv("T2M_GPU_WEIGHTS"); v {
	case "", "nf4":
		return true, nil
	case "bf16":
		return false, nil
	default:
		return false, fmt.Errorf("gpu: T2M_GPU_WEIGHTS=%q: want nf4 (the default: weights kept at 4 bits) or bf16 (dequantized once at load)", v)
	}
}
