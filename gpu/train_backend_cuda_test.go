//go:build t2mcuda

package gpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// backendBatch is cudatest.CompletionBatch with the last five positions of row 1 right padding and NumItems
// as in a window of several micro-batches.
func backendBatch(rng *rand.Rand, rows, seq, vocab int) model.Batch {
	b := cudatest.CompletionBatch(rng, rows, seq, vocab, 5)
	b.NumItems = float32(model.CountCompletionTokens(b.Labels, rows, seq) + 7)
	return b
}

func zeroGrads(p *train.Params) [][]float32 {
	g := make([][]float32, len(p.Values))
	for i, v := range p.Values {
		g[i] = make([]float32, len(v))
	}
	return g
}

// TestShortBatchesOnLargerMachine checks that the machine runs a micro-batch at its own shape: on a backend
// reserved for [3, 64], batches [2, 40] (LoRA dropout on, two steps, and an evaluation) and [1, 24] give
// the losses and LoRA gradients of backends built for exactly those shapes (relative 1e-6: the same kernels
// on the same shapes; a launch that still used the reserved shape's rows or length would be far off), and
// a full [3, 64] batch afterwards still matches its own exact machine.
func TestShortBatchesOnLargerMachine(t *testing.T) {
	cudatest.Device(t)
	rng := rand.New(rand.NewPCG(51, 52))
	w, lp := cudatest.TinyLoRA(t, rng, 4, 0.05)
	p := train.NewParams(lp)
	f, ok := train.LookupBackend("cuda")
	if !ok {
		t.Fatal("no cuda backend registered")
	}
	open := func(rows, seq int) train.Backend {
		b, err := f(w, p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if err := b.(train.ShapeReserver).Reserve(rows, seq); err != nil {
			t.Fatal(err)
		}
		return b
	}
	big := open(3, 64)
	for _, c := range []struct {
		rows, seq int
		steps     []uint64
	}{{2, 40, []uint64{3, 10}}, {1, 24, []uint64{5}}, {3, 64, []uint64{7}}} {
		exact := open(c.rows, c.seq)
		mb := backendBatch(rng, c.rows, c.seq, w.Config.VocabSize)
		if c.rows == 1 { // backendBatch pads row 1; give this one a padded tail of its own
			for k := c.seq - 3; k < c.seq; k++ {
				mb.Mask[k], mb.Labels[k] = 0, -100
			}
		}
		for _, step := range append(c.steps, 0) {
			eval := step == 0
			var gBig, gExact [][]float32
			if !eval {
				gBig, gExact = zeroGrads(p), zeroGrads(p)
			}
			lb, err := big.Loss(mb, c.rows, c.seq, step, gBig)
			if err != nil {
				t.Fatal(err)
			}
			le, err := exact.Loss(mb, c.rows, c.seq, step, gExact)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range gBig {
				worst = max(worst, numtest.RelL2(gBig[i], gExact[i]))
			}
			t.Logf("[%d, %d] step %d (eval %v): loss %.7f on [3, 64], %.7f exact; worst gradient difference %.3g",
				c.rows, c.seq, step, eval, lb, le, worst)
			if e := math.Abs(float64(lb-le)) / math.Abs(float64(le)); !(e <= 1e-6) {
				t.Errorf("[%d, %d] step %d: loss differs by %.3g relative", c.rows, c.seq, step, e)
			}
			if !(worst <= 1e-6) {
				t.Errorf("[%d, %d] step %d: gradients differ by %.3g relative L2", c.rows, c.seq, step, worst)
			}
		}
	}
}

// TestTrainBackendMatchesCPU runs the "cuda" train.Backend and the CPU one on the tiny Qwen2 (NF4, LoRA
// r=4 with dropout 0.05 on every projection) on the same micro-batch [2, 40], which the GPU runs at that
// shape on its [3, 64] machine: training losses and every LoRA gradient at two dropout steps, after an in-place
// parameter update (what the loop's AdamW does between windows), and the evaluation loss. Tolerances as
// TestMachineLossGrads: loss 1e-2 relative, gradients 5e-2 relative L2 (bf16 activations). The test also
// checks it can tell dropout masks apart: the CPU's gradients at two steps differ by more than that.
func TestTrainBackendMatchesCPU(t *testing.T) {
	d := cudatest.Device(t)
	_ = d
	rng := rand.New(rand.NewPCG(61, 62))
	w, lp := cudatest.TinyLoRA(t, rng, 4, 0.05)
	p := train.NewParams(lp)
	f, _ := train.LookupBackend("cpu")
	cpu, err := f(w, p)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	fg, ok := train.LookupBackend("cuda")
	if !ok {
		t.Fatal("no cuda backend registered")
	}
	gb, err := fg(w, p)
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	if err := gb.(train.ShapeReserver).Reserve(3, 64); err != nil {
		t.Fatal(err)
	}
	t.Logf("backend %s", gb.Name())
	mb := backendBatch(rng, 2, 40, w.Config.VocabSize)
	var cpuGrads [][][]float32
	for round, step := range []uint64{3, 10, 10} {
		if round == 2 { // an optimizer-like update in place between windows
			for _, v := range p.Values {
				for j := range v {
					v[j] += float32(rng.NormFloat64() * 0.02)
				}
			}
		}
		gc, gg := zeroGrads(p), zeroGrads(p)
		lc, err := cpu.Loss(mb, 2, 40, step, gc)
		if err != nil {
			t.Fatal(err)
		}
		lg, err := gb.Loss(mb, 2, 40, step, gg)
		if err != nil {
			t.Fatal(err)
		}
		cpuGrads = append(cpuGrads, gc)
		t.Logf("round %d, dropout step %d: loss GPU %.6f, CPU %.6f", round, step, lg, lc)
		if e := math.Abs(float64(lg-lc)) / math.Abs(float64(lc)); !(e <= 1e-2) {
			t.Errorf("round %d: loss relative error %.3g > 1e-2", round, e)
		}
		worst := 0.0
		for i := range gc {
			e := numtest.RelL2(gg[i], gc[i])
			worst = max(worst, e)
			if !(e <= 5e-2) {
				t.Errorf("round %d: gradient %d (%s %c): relative error %.3g > 5e-2", round, i, p.Modules[i/2], "AB"[i%2], e)
			}
		}
		t.Logf("round %d: worst gradient relative error %.3g", round, worst)
	}
	minDiff := math.Inf(1)
	for i := range cpuGrads[0] {
		minDiff = min(minDiff, numtest.RelL2(cpuGrads[0][i], cpuGrads[1][i]))
	}
	t.Logf("CPU gradients, dropout step 3 vs 10: smallest relative difference %.3g", minDiff)
	if !(minDiff > 5e-2) {
		t.Errorf("dropout steps 3 and 10 give gradients within %.3g: this test would not notice a wrong mask", minDiff)
	}
	lc, err := cpu.Loss(mb, 2, 40, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := gb.Loss(mb, 2, 40, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eval loss: GPU %.6f, CPU %.6f", lg, lc)
	if e := math.Abs(float64(lg-lc)) / math.Abs(float64(lc)); !(e <= 1e-2) {
		t.Errorf("eval loss relative error %.3g > 1e-2", e)
	}
}

// TestStageLoRA checks the backend's change detection: a fresh flat copy reports a change, an unchanged
// one none, and a single changed value (also +0 → −0) is caught and copied.
func TestStageLoRA(t *testing.T) {
	values := [][]float32{{1, 2, 3}, {0, 5}, {6}}
	offs := []int{0, 3, 5}
	flat := make([]float32, 6)
	if !stageLoRA(flat, values, offs) {
		t.Error("first staging reported no change")
	}
	if stageLoRA(flat, values, offs) {
		t.Error("unchanged values reported as changed")
	}
	values[1][0] = float32(math.Copysign(0, -1))
	if !stageLoRA(flat, values, offs) || math.Float32bits(flat[3]) != 1<<31 {
		t.Errorf("+0 → −0 not staged: %v", flat)
	}
	values[2][0] = 7
	if !stageLoRA(flat, values, offs) || !slices.Equal(flat, []float32{1, 2, 3, float32(math.Copysign(0, -1)), 5, 7}) {
		t.Errorf("changed value not staged: %v", flat)
	}
}

// BenchmarkHostUpdate times, at the 7B's LoRA shape (r=8 on q,k,v,o,gate,up of 28 layers, ≈ 15.1M
// values), what the CUDA backend adds to an update by keeping the optimizer on the host: the changed LoRA
// values to the device once per update (stageLoRA + SetLoRA's conversion and copies), the unchanged check
// on every other micro-batch of the window, the fp32 gradients back and added into the loop's (every
// micro-batch), and the loop's ClipGradNorm and AdamW (per update). It fails if the round trip changes a
// value or the change detection is wrong. Each part's median over b.N rounds is reported as a metric
// (go test -tags t2mcuda -run '^$' -bench HostUpdate ./gpu/ on a GPU machine).
func BenchmarkHostUpdate(b *testing.B) {
	t := b
	d := cudatest.Device(t)
	reg, err := model.Lookup("qwen2.5-coder-7b")
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(lora.Config{R: 8, Alpha: 16}, reg.Config.NumLayers, reg.Config.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(a)
	if err != nil {
		t.Fatal(err)
	}
	p := train.NewParams(lp)
	n := sum(p.Sizes())
	rng := rand.New(rand.NewPCG(71, 72))
	offs := make([]int, len(p.Values))
	off := 0
	for i, v := range p.Values {
		for j := range v {
			v[j] = float32(rng.NormFloat64() * 0.01)
		}
		offs[i] = off
		off += len(v)
	}
	ar := cudatest.Arena(t, d, int64(n)*10+(1<<20))
	master, _ := ar.Alloc(int64(n)*4, "master")
	bfDev, _ := ar.Alloc(int64(n)*2, "bf16")
	flat, bf, gflat := make([]float32, n), make([]uint16, n), make([]float32, n)
	grads := zeroGrads(p)
	opt := train.NewAdamW(p.Sizes(), 0)
	var up, same, down, clip, adam []float64
	ms := func(t0 time.Time) float64 { return float64(time.Since(t0).Microseconds()) / 1e3 }
	b.ResetTimer()
	for range b.N {
		for _, g := range grads {
			for j := range g {
				g[j] = float32(rng.NormFloat64() * 1e-3)
			}
		}
		t0 := time.Now()
		if !stageLoRA(flat, p.Values, offs) {
			t.Fatal("updated values reported unchanged")
		}
		cuda.RoundBF16(bf, flat)
		if err := cuda.Upload(d, master, flat); err != nil {
			t.Fatal(err)
		}
		if err := cuda.Upload(d, bfDev, bf); err != nil {
			t.Fatal(err)
		}
		up = append(up, ms(t0))
		t0 = time.Now()
		if stageLoRA(flat, p.Values, offs) {
			t.Fatal("unchanged values reported changed")
		}
		same = append(same, ms(t0))
		t0 = time.Now()
		if err := cuda.Download(d, gflat, master); err != nil { // the gradients' size and path
			t.Fatal(err)
		}
		addGrads(grads, gflat, offs)
		down = append(down, ms(t0))
		for i := range flat {
			if gflat[i] != flat[i] {
				t.Fatalf("round trip changed value %d: %g → %g", i, flat[i], gflat[i])
			}
		}
		t0 = time.Now()
		train.ClipGradNorm(grads, 1)
		clip = append(clip, ms(t0))
		t0 = time.Now()
		if err := opt.Update(p.Values, grads, 2e-4); err != nil {
			t.Fatal(err)
		}
		adam = append(adam, ms(t0))
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(med(up), "upload-ms/update")
	b.ReportMetric(med(same), "unchanged-check-ms/micro")
	b.ReportMetric(med(down), "grads-back-ms/micro")
	b.ReportMetric(med(clip), "clip-ms/update")
	b.ReportMetric(med(adam), "adamw-ms/update")
	b.ReportMetric(float64(n), "lora-values")
}
