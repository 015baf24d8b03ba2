package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/internal/version"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// fileSHA256 is the hex sha256 of a file's bytes, computed here independently of eval.HashFile.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// saveAdapter writes a fresh LoRA adapter of rank 2 for the tiny model into a new <run>/adapter folder.
func saveAdapter(t *testing.T) string {
	t.Helper()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(lora.Config{R: 2, Alpha: 4, BaseModel: "tiny"}, reg.Config.NumLayers, reg.Config.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tiny_r2", "adapter")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Every report of t2m eval records its provenance: the command line given, the version, the model, the
// adapter and the data files with their sha256, the settings, the timings and the GPU.
func TestEvaluateRecordsProvenance(t *testing.T) {
	var calls [][]int
	closed := false
	withFakeCUDA(t, nil, &fakeGenerator{out: findA1, calls: &calls, closed: &closed})
	dataDir, runs, adapter := writeSplits(t), filepath.Join(t.TempDir(), "runs"), saveAdapter(t)
	cmdline := []string{"t2m", "eval", "--model", "tiny", "--adapter", adapter}
	res, err := Evaluate(EvalOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cuda"}, Adapter: adapter,
		DataDir: dataDir, OutputDir: runs, MaxLen: 100, MaxNewTokens: 64, Limit: 5, Batch: 3, CommandLine: cmdline,
		HeldOutCollections: []string{"museum_exhibits"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.RunName != "tiny_r2" {
		t.Fatalf("run %q", res.RunName)
	}
	for _, s := range res.Splits {
		rep, err := eval.ReadReport(s.ReportFile) // as written, not as held in memory
		if err != nil {
			t.Fatal(err)
		}
		p := rep.Provenance
		if p == nil {
			t.Fatalf("%s: no provenance", s.Split)
		}
		if !reflect.DeepEqual(p.Command, cmdline) || p.T2MVersion != version.String() || p.CreatedAt == "" {
			t.Errorf("%s: command %q, version %q, created %q", s.Split, p.Command, p.T2MVersion, p.CreatedAt)
		}
		if p.Model == nil || p.Model.Name != "tiny" || !p.Model.Registered {
			t.Errorf("%s: model %+v", s.Split, p.Model)
		}
		absAdapter, _ := filepath.Abs(adapter)
		if p.Adapter == nil || p.Adapter.Path != absAdapter ||
			p.Adapter.AdapterModelSHA256 != fileSHA256(t, filepath.Join(adapter, "adapter_model.safetensors")) ||
			p.Adapter.AdapterConfigSHA256 != fileSHA256(t, filepath.Join(adapter, "adapter_config.json")) {
			t.Errorf("%s: adapter %+v", s.Split, p.Adapter)
		}
		if p.Tokenizer == nil || p.Tokenizer.BuiltIn == "" {
			t.Errorf("%s: tokenizer %+v, want the built-in one", s.Split, p.Tokenizer)
		}
		if len(p.Data) != 2 {
			t.Fatalf("%s: data %+v", s.Split, p.Data)
		}
		for i, split := range EvalSplits {
			path := filepath.Join(dataDir, split+".jsonl")
			st, _ := os.Stat(path)
			if filepath.Base(p.Data[i].Path) != split+".jsonl" || !filepath.IsAbs(p.Data[i].Path) ||
				p.Data[i].SHA256 != fileSHA256(t, path) || p.Data[i].Bytes != st.Size() {
				t.Errorf("%s: data[%d] %+v", s.Split, i, p.Data[i])
			}
		}
		want := eval.Settings{Device: "cuda", Quantization: "none", MaxLen: 100, MaxNewTokens: 64, Limit: 5,
			HeldOutCollections: []string{"museum_exhibits"}, GenerationBatch: 3, Decoding: "greedy"}
		if !reflect.DeepEqual(p.Settings, want) {
			t.Errorf("%s: settings %+v, want %+v", s.Split, p.Settings, want)
		}
		tm := p.Timings
		if tm.LoadSeconds <= 0 || tm.GenerationSeconds <= 0 || tm.ScoringSeconds <= 0 || tm.WallSeconds < tm.LoadSeconds+tm.GenerationSeconds {
			t.Errorf("%s: timings %+v", s.Split, tm)
		}
		if p.GPU != "fake GPU" {
			t.Errorf("%s: GPU %q, want the device's description", s.Split, p.GPU)
		}
		// The evaluation's numbers are those of a report without provenance.
		if rep.Total != 2 || rep.OverallPassed != 2 {
			t.Errorf("%s: %+v", s.Split, rep.Rates)
		}
	}
}

// A run folder that already holds reports is refused, naming the folder and --overwrite (before the
// model is loaded when the run name is known); Overwrite replaces the reports.
func TestEvaluateRefusesToOverwrite(t *testing.T) {
	var calls [][]int
	closed := false
	withFakeCUDA(t, nil, &fakeGenerator{out: findA1, calls: &calls, closed: &closed})
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	opts := EvalOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cuda"}, DataDir: dataDir, OutputDir: runs,
		MaxLen: 100, MaxNewTokens: 64, CommandLine: []string{"first"}}
	if _, err := Evaluate(opts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(runs, "tiny_baseline")
	before, _ := os.ReadFile(filepath.Join(dir, "eval_report.json"))
	n := len(calls)
	opts.CommandLine = []string{"second"}
	_, err := Evaluate(opts)
	if err == nil || !strings.Contains(err.Error(), "run folder "+dir+" already holds reports") || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("second evaluation into %s: %v, want a refusal naming the folder and --overwrite", dir, err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "eval_report.json")); string(after) != string(before) || len(calls) != n {
		t.Errorf("the refused run generated (%d calls) or changed the report", len(calls)-n)
	}
	// The check under the lock catches a run name known only once the model is loaded.
	if err := refuseOverwrite(dir); err == nil {
		t.Error("refuseOverwrite: no error for a folder with reports")
	}
	opts.Overwrite = true
	if _, err := Evaluate(opts); err != nil {
		t.Fatalf("with Overwrite: %v", err)
	}
	rep, err := eval.ReadReport(filepath.Join(dir, "eval_report.json"))
	if err != nil || rep.Provenance == nil || rep.Provenance.Command[0] != "second" {
		t.Errorf("with Overwrite the report is not the new one: %+v, %v", rep, err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) != 0 {
		t.Errorf("temporaries left: %v", tmp)
	}
}

// An interrupt stops generation (within a chunk at the generator's next step; here, with a generator that
// ignores it, after the chunk): the unfinished split's files are the previous complete ones (or none), and
// the error says so.
func TestEvaluateInterruptedWritesNoHalfReport(t *testing.T) {
	var calls [][]int
	closed := false
	gen := &fakeGenerator{out: findA1, calls: &calls, closed: &closed}
	withFakeCUDA(t, nil, gen)
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	dir := filepath.Join(runs, "tiny_baseline")
	// interruptAfter makes the run's stop channel close right after its n-th Generate call (one chunk per
	// split: call 1 is eval's, 2 held_out's), as a signal arriving during that chunk would.
	interruptAfter := func(n int) func() (<-chan struct{}, func()) {
		stop := make(chan struct{})
		calls = calls[:0]
		gen.onCall = func(k int) { // the generator is copied when Evaluate makes it: set before
			if k == n {
				close(stop)
			}
		}
		return func() (<-chan struct{}, func()) { return stop, func() {} }
	}
	opts := EvalOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cuda"}, DataDir: dataDir, OutputDir: runs,
		MaxLen: 100, MaxNewTokens: 64, Batch: 1, WatchInterrupts: interruptAfter(1)}
	_, err := Evaluate(opts)
	var stopped *EvalInterrupted
	if !errors.As(err, &stopped) || !errors.Is(err, train.ErrInterrupted) || stopped.Split != "eval" || len(stopped.Written) != 0 {
		t.Fatalf("interrupted in eval: %v", err)
	}
	if len(calls) != 1 {
		t.Errorf("%d chunks generated after the interrupt, want none", len(calls)-1)
	}
	if names := existingFiles(t, dir); len(names) != 1 || names[0] != ".lock" {
		t.Errorf("after an interrupt of a new run the folder holds %v, want no report", names)
	}
	// A complete run, then an interrupted overwrite during held_out: eval is new and complete, held_out is
	// the previous one, byte for byte.
	opts.WatchInterrupts, gen.onCall = nil, nil
	if _, err := Evaluate(opts); err != nil {
		t.Fatal(err)
	}
	oldHeld, _ := os.ReadFile(filepath.Join(dir, "held_out_report.json"))
	oldHeldPreds, _ := os.ReadFile(filepath.Join(dir, "held_out_predictions.jsonl"))
	opts.Overwrite, opts.WatchInterrupts = true, interruptAfter(2)
	_, err = Evaluate(opts)
	if !errors.As(err, &stopped) || stopped.Split != "held_out" || strings.Join(stopped.Written, ",") != "eval" ||
		!strings.Contains(err.Error(), "no held_out report or predictions were written") {
		t.Fatalf("interrupted in held_out: %v", err)
	}
	newHeld, _ := os.ReadFile(filepath.Join(dir, "held_out_report.json"))
	newHeldPreds, _ := os.ReadFile(filepath.Join(dir, "held_out_predictions.jsonl"))
	if string(newHeld) != string(oldHeld) || string(newHeldPreds) != string(oldHeldPreds) {
		t.Error("the interrupted split's previous files changed")
	}
	if names := existingFiles(t, dir); len(names) != 5 {
		t.Errorf("folder holds %v, want the lock and the two pairs, no temporaries", names)
	}
}

// existingFiles lists dir's entries by name.
func existingFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// What t2m compare reads of training_config.json (eval.TrainingConfig) is what writeTrainRecord writes.
func TestTrainRecordReadByCompare(t *testing.T) {
	path := filepath.Join(t.TempDir(), TrainConfigFile)
	rec := TrainRecord{Model: "tiny", Config: train.Fingerprint{Rank: 8, Alpha: 16, Epochs: 3, BatchSize: 4, GradAccum: 4,
		LR: 2e-4, MaxLen: 512, TrainSeqs: 1500, EvalSeqs: 170}, Provenance: &eval.Provenance{Model: &eval.ModelRef{Name: "tiny", Registered: true}}}
	if err := writeTrainRecord(path, rec); err != nil {
		t.Fatal(err)
	}
	tc, err := eval.ReadTrainingConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c := tc.Config
	if tc.Model != "tiny" || c.Rank != 8 || c.Alpha != 16 || c.Epochs != 3 || c.BatchSize != 4 || c.GradAccum != 4 || c.LR != 2e-4 ||
		c.MaxLen != 512 || c.TrainSeqs != 1500 || c.EvalSeqs != 170 || tc.Provenance == nil || tc.Provenance.Model.Name != "tiny" {
		t.Errorf("read back %+v", tc)
	}
}
