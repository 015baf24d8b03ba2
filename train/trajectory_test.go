package train_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
	"github.com/t2m/t2m/train/traintest"
)

var writeTrajectoryInputs = flag.Bool("write-trajectory-inputs", false,
	"write the trajectory fixture's inputs (inputs.json, init_adapter/) into testdata/trajectory; the reference must then be remade")

// TestTrajectoryInputs checks that the committed inputs of the trajectory fixture are what t2m writes
// now: the same hyperparameters, sequences, initial adapter, and micro-batches as train.Run forms them.
// With -write-trajectory-inputs it (re)writes them instead.
func TestTrajectoryInputs(t *testing.T) {
	dir := traintest.Dir()
	if *writeTrajectoryInputs {
		if err := traintest.WriteInputs(dir); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s and %s into %s; now remake the reference (%s)", traintest.InputsFile, traintest.InitAdapterDir, dir, traintest.ScriptCommand)
		return
	}
	fresh := t.TempDir()
	if err := traintest.WriteInputs(fresh); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(dir, traintest.InputsFile))
	if err != nil {
		t.Fatalf("%v: write the inputs with go test ./train -run TestTrajectoryInputs -args -write-trajectory-inputs", err)
	}
	now, err := os.ReadFile(filepath.Join(fresh, traintest.InputsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, now) {
		t.Errorf("%s differs from what t2m writes now (batching, shuffling or the run's settings changed): rewrite it "+
			"(go test ./train -run TestTrajectoryInputs -args -write-trajectory-inputs) and remake the reference (%s)",
			traintest.InputsFile, traintest.ScriptCommand)
	}
	// The adapter by value (its file format may evolve without changing the run).
	cfg, err := model.LoadConfig(filepath.Join("..", traintest.ModelDir))
	if err != nil {
		t.Fatal(err)
	}
	want, err := lora.Load(filepath.Join(fresh, traintest.InitAdapterDir), cfg.LoRADims())
	if err != nil {
		t.Fatal(err)
	}
	got, err := lora.Load(filepath.Join(dir, traintest.InitAdapterDir), cfg.LoRADims())
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.R != want.Config.R || got.Config.Alpha != want.Config.Alpha || got.Config.Dropout != want.Config.Dropout ||
		!slices.Equal(got.Paths(), want.Paths()) {
		t.Fatalf("committed %s: config %+v, modules %v; t2m writes %+v, %v", traintest.InitAdapterDir, got.Config, got.Paths(), want.Config, want.Paths())
	}
	for _, p := range want.Paths() {
		if !slices.Equal(got.Pairs[p].A, want.Pairs[p].A) || !slices.Equal(got.Pairs[p].B, want.Pairs[p].B) {
			t.Errorf("committed %s: %s differs from what t2m writes now", traintest.InitAdapterDir, p)
		}
	}
	in, err := traintest.ReadInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h := in.Hyper; h.TotalUpdates < 20 || h.Epochs < 2 || h.Dropout != 0 {
		t.Errorf("the trajectory run has %d updates over %d epochs, dropout %v: want ≥ 20 over ≥ 2, dropout 0", h.TotalUpdates, h.Epochs, h.Dropout)
	}
}

// TestTrajectoryParity trains the fixture's run (the tiny Qwen2 in float32, LoRA r=4 from the committed
// initial adapter, dropout 0, 28 updates over 4 epochs, accumulation 2, cosine schedule with warmup,
// clipping at 1) through train.Run on the CPU backend and compares it with HF PEFT + torch AdamW: per
// update loss and pre-clip grad norm within 1e-5 relative, the lr equal up to double rounding (Go's
// math.Cos against libm's), the final adapter within 1e-4 relative L2. It skips until the reference has
// been made (scripts/fixtures/make_trajectory_fixture.py).
func TestTrajectoryParity(t *testing.T) {
	factory, ok := train.LookupBackend("cpu")
	if !ok {
		t.Fatal("no cpu backend")
	}
	traintest.Check(t, traintest.Dir(), factory, traintest.Tolerances{Update: 1e-5, Adapter: 1e-4, LR: 1e-12})
}
