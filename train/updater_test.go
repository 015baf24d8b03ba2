package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/t2m/t2m/model"
)

// fakeDevice is a DeviceOptimizer on the CPU, standing in for the GPU backend: its "device" is a second
// copy of the parameters (its own LoRAParams, which its CPU backend reads), its own gradient sums and
// AdamW moments, all out of the host's sight except through LoadOptimizer and StoreOptimizer. A loop that
// read the host's Params without Updater.Sync would see stale values, and a test would see the difference.
type fakeDevice struct {
	Backend             // the CPU backend over params (the device's copy)
	params  *Params     // the device's parameters
	grads   [][]float32 // the device's gradient sums
	opt     *AdamW      // the device's moments
	loaded  bool
	loads   int // LoadOptimizer calls
	stores  int // StoreOptimizer calls
}

// withFakeDevice replaces r's CPU backend with a fakeDevice over a copy of r's parameters.
func withFakeDevice(t *testing.T, r *Run) *fakeDevice {
	t.Helper()
	host := r.Params.LoRA
	lp := &model.LoRAParams{Rank: host.Rank, Scaling: host.Scaling, Dropout: host.Dropout,
		A: map[string][]float32{}, B: map[string][]float32{}}
	for m, a := range host.A {
		lp.A[m], lp.B[m] = slices.Clone(a), slices.Clone(host.B[m])
	}
	p := NewParams(lp)
	be, err := newCPUBackend(r.Backend.(*cpuBackend).w, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	f := &fakeDevice{Backend: be, params: p, opt: NewAdamW(p.Sizes(), 0)}
	for _, v := range p.Values {
		f.grads = append(f.grads, make([]float32, len(v)))
	}
	r.Backend = f
	return f
}

func (f *fakeDevice) LoadOptimizer(values [][]float32, opt *AdamW) error {
	for i := range values {
		copy(f.params.Values[i], values[i])
		copy(f.opt.M[i], opt.M[i])
		copy(f.opt.V[i], opt.V[i])
	}
	f.loaded = true
	f.loads++
	return nil
}

func (f *fakeDevice) ZeroGrads() error {
	for _, g := range f.grads {
		clear(g)
	}
	return nil
}

func (f *fakeDevice) AccumulateLoss(b model.Batch, batch, seq int, dropoutStep uint64) (float32, error) {
	if !f.loaded {
		return 0, fmt.Errorf("fake device: AccumulateLoss before LoadOptimizer")
	}
	return f.Backend.Loss(b, batch, seq, dropoutStep, f.grads)
}

func (f *fakeDevice) AllReduceGrads(c Collective, extra []float32) error {
	return c.AllReduceSum(append(f.grads, extra))
}

func (f *fakeDevice) Step(opt *AdamW, lr, maxNorm float64) (float64, error) {
	norm := ClipGradNorm(f.grads, maxNorm)
	f.opt.Beta1, f.opt.Beta2, f.opt.Eps, f.opt.WeightDecay = opt.Beta1, opt.Beta2, opt.Eps, opt.WeightDecay
	f.opt.Step = opt.Step - 1 // Update counts it
	return norm, f.opt.Update(f.params.Values, f.grads, lr)
}

func (f *fakeDevice) StoreOptimizer(values [][]float32, opt *AdamW) error {
	for i := range values {
		copy(values[i], f.params.Values[i])
		copy(opt.M[i], f.opt.M[i])
		copy(opt.V[i], f.opt.V[i])
	}
	f.stores++
	return nil
}

// fileBytes reads a file of a run folder.
func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With the optimizer on the (fake) device, a run — eval loss per epoch, an evaluation every 2 updates,
// checkpoints — writes the same metrics, checkpoint and adapter bit for bit as with it on the host, the
// evaluations see the same parameters, and the host's Params end with the last update's values.
func TestDeviceOptimizerMatchesHost(t *testing.T) {
	hostDir, devDir := t.TempDir(), t.TempDir()
	host, hs := signalRun(t, hostDir, 2, 0, nil)
	if _, err := host.Train(); err != nil {
		t.Fatal(err)
	}
	dev, ds := signalRun(t, devDir, 2, 0, nil)
	f := withFakeDevice(t, dev)
	if _, err := dev.Train(); err != nil {
		t.Fatal(err)
	}
	if f.loads != 1 || f.stores == 0 {
		t.Errorf("the device optimizer was loaded %d times and stored %d times, want 1 and ≥ 1", f.loads, f.stores)
	}
	sameParams(t, "final parameters on the host", dev.Params.Values, host.Params.Values)
	if !slices.Equal(ds.steps, hs.steps) || len(hs.steps) != 3 {
		t.Fatalf("evaluated after updates %v, the host run after %v (want 3 evaluations)", ds.steps, hs.steps)
	}
	for _, s := range hs.steps {
		sameParams(t, fmt.Sprintf("parameters seen by the evaluation after update %d", s), ds.params[s], hs.params[s])
	}
	for _, name := range []string{"metrics.jsonl", "checkpoint/" + checkpointTensors, "checkpoint/" + checkpointState,
		"adapter/adapter_model.safetensors"} {
		h, d := fileBytes(t, filepath.Join(hostDir, name)), fileBytes(t, filepath.Join(devDir, name))
		if name == "metrics.jsonl" {
			h, d = stripTimes(t, h), stripTimes(t, d)
		}
		if !bytes.Equal(h, d) {
			t.Errorf("%s differs between the host and the device optimizer", name)
		}
	}
}

// stripTimes drops the wall-clock fields of metrics lines (elapsed, timestamp, tok/s).
func stripTimes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out []byte
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m Metric
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		m.Elapsed, m.Timestamp, m.TokensPS = 0, "", nil
		out = append(out, []byte(fmt.Sprintf("%+v\n", metricValues(m)))...)
	}
	return out
}

// metricValues is m with its pointers followed, for printing.
func metricValues(m Metric) []any {
	v := func(p *float64) any {
		if p == nil {
			return nil
		}
		return math.Float64bits(*p)
	}
	return []any{m.Step, m.Epoch, v(m.Loss), v(m.LR), v(m.GradNorm), v(m.EvalLoss), m.Rates}
}

// A run stopped after 2 updates with the optimizer on the device, resumed with it on the device, ends
// with the parameters of a straight run on the host, bit for bit: the checkpoint holds the device's state.
func TestDeviceOptimizerResume(t *testing.T) {
	fp := testFingerprint()
	train, eval := randomSeqs(12, smallConfig().VocabSize, 1), randomSeqs(3, smallConfig().VocabSize, 2)
	straight := newTestRun(t, t.TempDir(), fp, train, eval)
	if _, err := straight.Train(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := newTestRun(t, dir, fp, train, eval)
	withFakeDevice(t, first)
	first.MaxSteps = 2
	if res, err := first.Train(); err != nil || res.Steps != 2 {
		t.Fatalf("first half: %v, %+v", err, res)
	}
	second := newTestRun(t, dir, fp, train, eval)
	withFakeDevice(t, second)
	second.Resume = true
	res, err := second.Train()
	if err != nil || res.Steps != 6 {
		t.Fatalf("resumed: %v, %+v", err, res)
	}
	sameParams(t, "resumed on the device vs straight on the host", second.Params.Values, straight.Params.Values)
}

// Two ranks with the optimizer on their (fake) devices agree with two ranks on the host bit for bit, and
// their replicas hold the same bits.
func TestDeviceOptimizerDataParallel(t *testing.T) {
	fp := parallelFingerprint()
	hostRuns, _, errs := runRanks(t, t.TempDir(), 2, fp, nil)
	for rank, err := range errs {
		if err != nil {
			t.Fatalf("host, rank %d: %v", rank, err)
		}
	}
	devRuns, _, errs := runRanks(t, t.TempDir(), 2, fp, func(_ int, r *Run) { withFakeDevice(t, r) })
	for rank, err := range errs {
		if err != nil {
			t.Fatalf("device, rank %d: %v", rank, err)
		}
	}
	for rank := range devRuns {
		sameParams(t, fmt.Sprintf("rank %d", rank), devRuns[rank].Params.Values, hostRuns[0].Params.Values)
	}
}
