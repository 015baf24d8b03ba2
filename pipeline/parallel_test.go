package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
)

// lengthGenerator answers each prompt with {"n": <its length>} in byte tokens: outputs that differ from
// prompt to prompt, so an output gathered into the wrong slot shows.
type lengthGenerator struct{}

func (lengthGenerator) Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error) {
	res := make([][]int32, len(prompts))
	for i, p := range prompts {
		for _, id := range tokenizer.Bytes().Encode(fmt.Sprintf(`{"n": %d}`, len(p))) {
			res[i] = append(res[i], int32(id))
		}
	}
	return res, nil
}

func (lengthGenerator) Describe() string { return "" }
func (lengthGenerator) Close() error     { return nil }

// writeThreeSplits writes eval and held_out splits of three examples each (different intents, so the
// model's outputs differ) into a new folder.
func writeThreeSplits(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for split, coll := range map[string]string{"train": "c", "eval": "c", "held_out": "museum_exhibits"} {
		body := shortExample(t, coll, "a over 1") + shortExample(t, coll, "show a above one") + shortExample(t, coll, "a")
		if err := os.WriteFile(filepath.Join(dir, split+".jsonl"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestShardedEvaluateMatchesOneProcess: two ranks of a sharded evaluation (an in-process group standing in
// for NCCL) give rank 0 the same outputs and reports as one process, and rank 1 writes nothing.
func TestShardedEvaluateMatchesOneProcess(t *testing.T) {
	dataDir := writeThreeSplits(t)
	old := lookupDevice
	lookupDevice = func(name string) (train.Device, bool) {
		if name == "cuda" {
			return train.Device{Name: "cuda", NewGenerator: func(*model.Weights, *model.LoRAParams) (train.Generator, error) {
				return lengthGenerator{}, nil
			}}, true
		}
		return train.LookupDevice(name)
	}
	t.Cleanup(func() { lookupDevice = old })
	opts := EvalOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cuda"}, DataDir: dataDir, MaxLen: 2048,
		MaxNewTokens: 12, Batch: 1, RunName: "r"}
	oneOpts := opts
	oneOpts.OutputDir = filepath.Join(t.TempDir(), "one")
	one, err := Evaluate(oneOpts)
	if err != nil {
		t.Fatal(err)
	}
	group := train.NewLocalGroup(2)
	dirs := []string{filepath.Join(t.TempDir(), "two"), filepath.Join(t.TempDir(), "rank1")}
	res, errs := make([]*EvalResult, 2), make([]error, 2)
	var logs [2]strings.Builder
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts
			o.OutputDir, o.Group, o.Log = dirs[r], group[r], &logs[r]
			res[r], errs[r] = Evaluate(o)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if len(res[1].Splits) != 0 {
		t.Errorf("rank 1 returned %d splits, want none (rank 0 scores)", len(res[1].Splits))
	}
	if entries, _ := os.ReadDir(filepath.Join(dirs[1], "r")); len(entries) != 0 {
		t.Errorf("rank 1 wrote %d files", len(entries))
	}
	if len(res[0].Splits) != len(one.Splits) {
		t.Fatalf("rank 0: %d splits, one process %d", len(res[0].Splits), len(one.Splits))
	}
	distinct := map[string]bool{}
	for i, s := range one.Splits {
		got := res[0].Splits[i]
		for j, want := range s.Results {
			distinct[want.RawOutput] = true
			if got.Results[j].RawOutput != want.RawOutput {
				t.Errorf("%s example %d: %q on 2 ranks, %q on one", s.Split, j, got.Results[j].RawOutput, want.RawOutput)
			}
		}
		if got.Report.Rates != s.Report.Rates {
			t.Errorf("%s: rates %+v on 2 ranks, %+v on one", s.Split, got.Report.Rates, s.Report.Rates)
		}
	}
	if len(distinct) < 2 {
		t.Errorf("the examples' outputs are all alike (%v): the test would not see a misplaced output", distinct)
	}
	if !strings.Contains(logs[0].String(), "generating eval (rank 0 of 2): 2/2 prompts") ||
		!strings.Contains(logs[1].String(), "generating eval (rank 1 of 2): 1/1 prompts") {
		t.Errorf("progress lines:\nrank 0:\n%s\nrank 1:\n%s", logs[0].String(), logs[1].String())
	}
}
