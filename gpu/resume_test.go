//go:build t2mcuda

package gpu

import (
	"bytes"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// resumeRun builds a training run in dir on a small model (GQA, biases, dropout on) with the "cuda" backend.
func resumeRun(t *testing.T, dev train.Device, dir string, fp train.Fingerprint, seqs []data.Sequence) *train.Run {
	t.Helper()
	cfg := model.Config{HiddenSize: 64, IntermediateSize: 96, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		VocabSize: 97, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 512, Dtype: "float32"}
	w, err := model.RandomWeights(cfg, 5, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.New(lora.Config{R: fp.Rank, Alpha: fp.Alpha, Dropout: fp.Dropout}, cfg.NumLayers, cfg.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	lp.Dropout = float32(fp.Dropout)
	p := train.NewParams(lp)
	be, err := dev.NewBackend(w, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	if r, ok := be.(train.ShapeReserver); ok {
		if err := r.Reserve(fp.BatchSize, 16); err != nil {
			t.Fatal(err)
		}
	}
	return &train.Run{Dir: dir, Fingerprint: fp, Bucket: 8, Adapter: ad, Params: p, Backend: be, TrainSeqs: seqs,
		Log: &bytes.Buffer{}}
}

// TestResumeOnGPU: 6 updates straight on the GPU and 2 updates, a checkpoint, then a resumed run of the other
// 4 (fresh backend and adapter: everything comes from the checkpoint) end with the same LoRA parameters, up to
// the run-to-run noise of the GPU's atomic gradient sums (measured by a second straight run): the optimizer
// state, schedule position, data order and dropout masks all survive the interruption.
func TestResumeOnGPU(t *testing.T) {
	dev, ok := train.LookupDevice("cuda")
	if !ok || dev.NewBackend == nil {
		t.Fatal(`no "cuda" training device registered in the t2mcuda build`)
	}
	if err := dev.Usable(); err != nil {
		t.Skipf("no GPU: %v", err)
	}
	rng := rand.New(rand.NewSource(3))
	var seqs []data.Sequence
	for i := range 12 {
		p, c := 4+rng.Intn(6), 2+rng.Intn(4)
		ids := make([]int32, p+c)
		for j := range p {
			ids[j] = int32(rng.Intn(97))
		}
		copy(ids[p:], ids[:c])
		seqs = append(seqs, data.Sequence{IDs: ids, PromptLen: p, Example: i})
	}
	fp := train.Fingerprint{Model: "small", Rank: 4, Alpha: 8, Dropout: 0.05, Epochs: 2, BatchSize: 2, GradAccum: 2,
		LR: 1e-2, Scheduler: "cosine", WarmupRatio: 0.05, MaxGradNorm: 1, MaxLen: 32, Seed: 42, Quantization: "nf4"}
	flat := func(p *train.Params) []float32 {
		var v []float32
		for _, x := range p.Values {
			v = append(v, x...)
		}
		return v
	}
	straight := resumeRun(t, dev, t.TempDir(), fp, seqs)
	if res, err := straight.Train(); err != nil || res.Steps != 6 {
		t.Fatalf("straight run: %v %+v", err, res)
	}
	again := resumeRun(t, dev, t.TempDir(), fp, seqs)
	if _, err := again.Train(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := resumeRun(t, dev, dir, fp, seqs)
	first.MaxSteps = 2
	if res, err := first.Train(); err != nil || res.Steps != 2 {
		t.Fatalf("first part: %v %+v", err, res)
	}
	second := resumeRun(t, dev, dir, fp, seqs)
	second.Resume = true
	if res, err := second.Train(); err != nil || res.Steps != 6 {
		t.Fatalf("resumed run: %v %+v", err, res)
	}
	want, noise := flat(straight.Params), numtest.RelL2(flat(again.Params), flat(straight.Params))
	moved := numtest.RelL2(flat(straight.Params), flat(resumeRun(t, dev, t.TempDir(), fp, seqs).Params))
	got := numtest.RelL2(flat(second.Params), want)
	t.Logf("resumed vs straight: relative L2 %.2e; straight vs straight %.2e; training moved the parameters by %.2e", got, noise, moved)
	if !(got <= math.Max(4*noise, 1e-6)) || !(moved > 1e3*math.Max(got, 1e-6)) {
		t.Errorf("resumed run differs from the straight one by %.2e (run-to-run noise %.2e, training moved %.2e)", got, noise, moved)
	}
}

// TestDeviceOptimizerOnGPU: the training loop's default on the GPU (gradient sums, clipping and AdamW on
// the device, the host's copies only at checkpoints and the adapter) ends 6 updates with the parameters of
// the same run with the optimizer on the host (Run.HostOptimizer), within the run-to-run noise of the
// GPU's atomic gradient sums or 1e-5 relative L2 (the device's AdamW and norm round like the host's up to
// float32 operation order), far below what training moved; the device run's adapter file holds its final
// parameters.
func TestDeviceOptimizerOnGPU(t *testing.T) {
	dev, ok := train.LookupDevice("cuda")
	if !ok || dev.NewBackend == nil {
		t.Fatal(`no "cuda" training device registered in the t2mcuda build`)
	}
	if err := dev.Usable(); err != nil {
		t.Skipf("no GPU: %v", err)
	}
	rng := rand.New(rand.NewSource(4))
	var seqs []data.Sequence
	for i := range 12 {
		p, c := 4+rng.Intn(6), 2+rng.Intn(4)
		ids := make([]int32, p+c)
		for j := range p {
			ids[j] = int32(rng.Intn(97))
		}
		copy(ids[p:], ids[:c])
		seqs = append(seqs, data.Sequence{IDs: ids, PromptLen: p, Example: i})
	}
	fp := train.Fingerprint{Model: "small", Rank: 4, Alpha: 8, Dropout: 0.05, Epochs: 2, BatchSize: 2, GradAccum: 2,
		LR: 1e-2, Scheduler: "cosine", WarmupRatio: 0.05, MaxGradNorm: 1, MaxLen: 32, Seed: 42, Quantization: "nf4"}
	flat := func(p *train.Params) []float32 {
		var v []float32
		for _, x := range p.Values {
			v = append(v, x...)
		}
		return v
	}
	run := func(host bool) *train.Run {
		r := resumeRun(t, dev, t.TempDir(), fp, seqs)
		r.HostOptimizer = host
		if res, err := r.Train(); err != nil || res.Steps != 6 {
			t.Fatalf("host optimizer %v: %v %+v", host, err, res)
		}
		return r
	}
	start := flat(resumeRun(t, dev, t.TempDir(), fp, seqs).Params)
	host, host2, device := run(true), run(true), run(false)
	want := flat(host.Params)
	noise := numtest.RelL2(flat(host2.Params), want)
	got := numtest.RelL2(flat(device.Params), want)
	moved := numtest.RelL2(want, start)
	t.Logf("device vs host optimizer: relative L2 %.2e; host vs host %.2e; training moved the parameters by %.2e", got, noise, moved)
	if !(got <= math.Max(4*noise, 1e-5)) || !(moved > 1e3*math.Max(got, 1e-6)) {
		t.Errorf("device optimizer differs from the host's by %.2e (run-to-run noise %.2e, training moved %.2e)", got, noise, moved)
	}
	again := t.TempDir()
	if err := device.Adapter.Save(again); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(device.Dir, "adapter", "adapter_model.safetensors"), filepath.Join(again, "adapter_model.safetensors")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(filepath.Join(device.Dir, "adapter", "adapter_model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(again, "adapter_model.safetensors"))
	if !bytes.Equal(a, b) {
		t.Errorf("the run's adapter file does not hold the final parameters of the device optimizer")
	}
}
