//go:build t2mcuda

package gpu

import (
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// TestTrainOutOfMemory: when the GPU has too little memory left for a training plan (another process holds
// the rest — here a test arena), Reserve fails before any step with an error that says how much was needed,
// how much is free and which flags to change, not a raw CUDA error; once the memory is back, the same
// backend reserves the same shape.
func TestTrainOutOfMemory(t *testing.T) {
	d := cudatest.Device(t)
	cfg := model.Config{HiddenSize: 512, IntermediateSize: 1536, NumLayers: 2, NumHeads: 8, NumKVHeads: 4, HeadDim: 64,
		VocabSize: 97, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 1024, Dtype: "float32"}
	w, err := model.RandomWeights(cfg, 7, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.New(lora.Config{R: 8, Alpha: 16}, cfg.NumLayers, cfg.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	be, err := NewTrainBackend(w, train.NewParams(lp))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	const leave = 1 << 30 // for the backend's context, cuBLAS and its weights: less than the plan needs
	release := hogAllBut(t, d, leave)
	const B, T = 64, 512
	err = be.(*TrainBackend).Reserve(B, T)
	release()
	if err == nil {
		t.Fatalf("a [%d, %d] plan fit in %.2f GiB", B, T, cuda.GiB(leave))
	}
	msg := err.Error()
	for _, want := range []string{"GiB", "free", "--batch-size", "--max-len", "--grad-accum"} {
		if !strings.Contains(msg, want) {
			t.Errorf("out-of-memory error lacks %q: %s", want, msg)
		}
	}
	t.Logf("with %.2f GiB left: %s", cuda.GiB(leave), msg)
	if err := be.(*TrainBackend).Reserve(B, T); err != nil {
		t.Fatalf("with the memory back: %v", err)
	}
}

// TestGenerateOutOfMemory: when the KV caches of a generation do not fit in what the GPU has left, Generate
// fails with how much was needed, how much is free and what to change, and the generator still works for a
// generation that fits.
func TestGenerateOutOfMemory(t *testing.T) {
	d := cudatest.Device(t)
	cfg := model.Config{HiddenSize: 256, IntermediateSize: 512, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 64,
		VocabSize: 97, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 32768, Dtype: "float32"}
	w, err := model.RandomWeights(cfg, 7, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := b.NewGenerator(w, nil, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	const leave = 1 << 30
	release := hogAllBut(t, d, leave)
	prompts := make([][]int32, 128)
	for i := range prompts {
		prompts[i] = []int32{1, 2, 3, int32(i % 97)}
	}
	// 128 sequences × 30,004 tokens of keys and values: 2 layers × 2 × 128 × 30004 × 128 × 2 bytes ≈ 3.9 GB,
	// well past the 1 GiB left (64 × 16,004 ≈ 1.05 GB did fit: the arena had the rest of a 256 MiB step).
	_, err = gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: 30000})
	release()
	if err == nil {
		t.Fatalf("caches of 128 × 30004 tokens fit in %.2f GiB", cuda.GiB(leave))
	}
	for _, want := range []string{"GiB", "free", "--max-new-tokens", "--max-len"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("out-of-memory error lacks %q: %v", want, err)
		}
	}
	t.Logf("with %.2f GiB left: %v", cuda.GiB(leave), err)
	out, err := gen.Generate(prompts[:2], model.GenerateOptions{MaxNewTokens: 4})
	if err != nil || len(out) != 2 || len(out[0]) != 4 {
		t.Fatalf("a small generation after the failure: %v, %v", out, err)
	}
}

// hogAllBut takes all of d's free memory but leave bytes, as another process would; the returned function
// gives it back.
func hogAllBut(t *testing.T, d *cuda.Device, leave int64) func() {
	t.Helper()
	if err := d.Bind(); err != nil {
		t.Fatal(err)
	}
	free, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	hog, err := cuda.NewArena(d, free)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hog.Alloc(free-leave, "another process"); err != nil {
		hog.Free()
		t.Fatal(err)
	}
	return func() { hog.Free() }
}
