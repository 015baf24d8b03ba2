package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/pipeline"
)

// shortExample is a valid example with a one-field schema, so that its byte-token prompt stays near 550
// tokens and a training step of the tiny model takes about a second.
func shortExample(collection, intent, output string, negative bool) string {
	ex := map[string]any{
		"schema":      map[string]any{"collection": collection, "domain": "d", "fields": []any{map[string]any{"name": "a", "type": "int", "role": "measure", "description": ""}}},
		"allowed_ops": map[string]any{"stage_operators": []string{"$match"}, "expression_operators": []string{"$gt"}},
		"intent":      intent,
		"output":      json.RawMessage(output),
		"is_negative": negative,
	}
	b, err := json.Marshal(ex)
	if err != nil {
		panic(err)
	}
	return string(b) + "\n"
}

// writeSplits writes train/eval/held_out.jsonl with two short examples each into dir.
func writeSplits(t *testing.T, dir string) {
	t.Helper()
	find := `{"type": "find", "filter": {"a": {"$gt": 1}}}`
	for split, coll := range map[string]string{"train": "c", "eval": "c", "held_out": "museum_exhibits"} {
		body := shortExample(coll, "a over 1", find, false) + shortExample(coll, "a over 2", `{"type": "find", "filter": {"a": {"$gt": 2}}}`, false)
		writeFile(t, filepath.Join(dir, split+".jsonl"), body)
	}
}

// train → adapter → eval and baseline on the built-in tiny model, end to end through the CLI.
func TestTrainEvalBaselineEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dataDir, runs := filepath.Join(dir, "data"), filepath.Join(dir, "runs")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dataDir)
	common := []string{"--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--max-len", "1024", "--limit", "2"}
	msg, err := runApp(t, append([]string{"train", "--epochs", "1", "--batch-size", "1", "--grad-accum", "1", "--lr", "1e-2", "--lora-r", "4"}, common...)...)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, msg)
	}
	for _, want := range []string{"step 1/2", "step 2/2", "eval_loss", "adapter saved"} {
		if !strings.Contains(msg, want) {
			t.Errorf("train output lacks %q:\n%s", want, msg)
		}
	}
	runDir := filepath.Join(runs, "tiny_r4")
	reg, _ := model.Lookup("tiny")
	ad, err := lora.Load(filepath.Join(runDir, "adapter"), reg.Config.LoRADims())
	if err != nil {
		t.Fatalf("adapter: %v", err)
	}
	if ad.Config.R != 4 || ad.Config.Alpha != 8 || ad.Config.Dropout != 0.05 {
		t.Errorf("adapter config %+v, want r 4, alpha 8, dropout 0.05", ad.Config)
	}
	// Update 1 has lr 0 (HF's first warmup step), update 2 the peak: B has left its zero init.
	nonZero := 0
	for _, p := range ad.Pairs {
		for _, v := range p.B {
			if v != 0 {
				nonZero++
			}
		}
	}
	if nonZero == 0 {
		t.Error("every lora_B of the trained adapter is still zero")
	}
	for _, f := range []string{"metrics.jsonl", pipeline.TrainConfigFile, "checkpoint/state.json", "checkpoint/state.safetensors"} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err != nil {
			t.Errorf("run folder: %v", err)
		}
	}

	gen := []string{"--max-new-tokens", "4"}
	msg, err = runApp(t, append(append([]string{"eval", "--adapter", filepath.Join(runDir, "adapter")}, gen...), common...)...)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, msg)
	}
	msg2, err := runApp(t, append(append([]string{"baseline"}, gen...), common...)...)
	if err != nil {
		t.Fatalf("baseline: %v\n%s", err, msg2)
	}
	for _, run := range []string{"tiny_r4", "tiny_baseline"} {
		for _, split := range []string{"eval", "held_out"} {
			rep, err := eval.ReadReport(filepath.Join(runs, run, split+"_report.json"))
			if err != nil {
				t.Fatalf("%s/%s: %v", run, split, err)
			}
			if rep.RunName != run || rep.Split != split {
				t.Errorf("report names run %q split %q, want %q %q", rep.RunName, rep.Split, run, split)
			}
			raw, err := os.ReadFile(filepath.Join(runs, run, split+"_predictions.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(raw), "\n"); n != 2 {
				t.Errorf("%s/%s: %d predictions, want 2", run, split, n)
			}
		}
	}
	if !strings.Contains(msg, "generating held_out: 2/2") || !strings.Contains(msg, "ETA") {
		t.Errorf("eval output lacks generation progress:\n%s", msg)
	}
	// compare sees both runs.
	msg, err = runApp(t, "compare", "--output-dir", runs)
	if err != nil || !strings.Contains(msg, "tiny_r4") || !strings.Contains(msg, "tiny_baseline") {
		t.Errorf("compare: %v\n%s", err, msg)
	}
	checkProvenance(t, dataDir, runs, msg)
}

// checkProvenance checks what TestTrainEvalBaselineEndToEnd's runs recorded about themselves and what
// compare shows of it: the training record's and the reports' provenance (hashes equal to the files'),
// the training settings beside the results and the adapter's gain over the baseline.
func checkProvenance(t *testing.T, dataDir, runs, compare string) {
	t.Helper()
	sha := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:])
	}
	raw, err := os.ReadFile(filepath.Join(runs, "tiny_r4", pipeline.TrainConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec pipeline.TrainRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Provenance == nil {
		t.Fatalf("training record without provenance (%v):\n%s", err, raw)
	}
	p := rec.Provenance
	// Training records its own command line: the program, then the train command and its arguments.
	if len(p.Command) < 3 || p.Command[0] != os.Args[0] || p.Command[1] != "train" || p.Command[len(p.Command)-1] != "2" || p.T2MVersion != version() || p.Model == nil || p.Model.Name != "tiny" ||
		len(p.Data) != 2 || p.Data[0].SHA256 != sha(filepath.Join(dataDir, "train.jsonl")) ||
		p.Data[1].SHA256 != sha(filepath.Join(dataDir, "eval.jsonl")) || p.Settings.Limit != 2 || p.Settings.MaxLen != 1024 ||
		p.Timings.TrainingSeconds <= 0 || p.Timings.WallSeconds < p.Timings.TrainingSeconds {
		t.Errorf("training provenance %+v", p)
	}
	adapter := filepath.Join(runs, "tiny_r4", "adapter")
	for _, run := range []string{"tiny_r4", "tiny_baseline"} {
		rep, err := eval.ReadReport(filepath.Join(runs, run, "held_out_report.json"))
		if err != nil || rep.Provenance == nil {
			t.Fatalf("%s: %v, provenance %v", run, err, rep.Provenance)
		}
		p := rep.Provenance
		wantCmd := map[string]string{"tiny_r4": "eval", "tiny_baseline": "baseline"}[run]
		if p.Command[1] != wantCmd || p.Settings.MaxNewTokens != 4 || p.Settings.Limit != 2 || p.Settings.GenerationBatch != 8 ||
			p.Data[1].SHA256 != sha(filepath.Join(dataDir, "held_out.jsonl")) || p.Timings.GenerationSeconds <= 0 {
			t.Errorf("%s: provenance %+v", run, p)
		}
		if (p.Adapter != nil) != (run == "tiny_r4") ||
			(p.Adapter != nil && p.Adapter.AdapterModelSHA256 != sha(filepath.Join(adapter, "adapter_model.safetensors"))) {
			t.Errorf("%s: adapter %+v", run, p.Adapter)
		}
	}
	// The runs table: r 4, alpha 8, 1 epoch, lr 0.01, max-len 1024, 2 training examples, the baseline
	// found, and the gain (both runs score 0% on the tiny model: +0.0 pts).
	if !regexp.MustCompile(`\| tiny_r4 \| tiny \| 4 \| 8 \| 1 \| 0\.01 \| 1024 \| 2 \| [0-9.]+% \| [0-9.]+% \| tiny_baseline \| [+-][0-9.]+ pts \| [+-][0-9.]+ pts \|`).MatchString(compare) {
		t.Errorf("compare lacks tiny_r4's settings and gain:\n%s", compare)
	}
	if !strings.Contains(compare, "| tiny_baseline | tiny | — | — | — | — | — | — |") || !strings.Contains(compare, "## Provenance") ||
		!strings.Contains(compare, "adapter_model.safetensors sha256 "+sha(filepath.Join(adapter, "adapter_model.safetensors"))[:12]) {
		t.Errorf("compare lacks the baseline's row or the provenance section:\n%s", compare)
	}
}

func TestModelCommandsBadInput(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dataDir)
	// A 7B config without weights: enough to decide the device.
	big := filepath.Join(dir, "qwen7b")
	if err := os.MkdirAll(big, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(big, "config.json"), `{"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
		"num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064}`)
	runs := filepath.Join(dir, "runs")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--model", "tiny", "--data-dir", filepath.Join(dir, "missing")}, "not found"},
		{[]string{"baseline", "--model", "tiny", "--data-dir", filepath.Join(dir, "missing")}, "t2m data"},
		{[]string{"train", "--model", "nosuchmodel", "--data-dir", dataDir}, "unknown model"},
		{[]string{"train", "--model", "qwen2.5-coder-7b", "--data-dir", dataDir}, "no built-in weights"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--run-name", "../x"}, "must not contain"},
		{[]string{"eval", "--model", "tiny", "--data-dir", dataDir, "--run-name", "a/b", "--adapter", "x"}, "must not contain"},
		{[]string{"eval", "--model", "tiny", "--data-dir", dataDir}, "--adapter DIR is required"},
		{[]string{"eval", "--model", "tiny", "--data-dir", dataDir, "--adapter", filepath.Join(dir, "noadapter"), "--output-dir", runs}, "adapter"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--device", "cuda"}, "no GPU backend"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--device", "tpu"}, "want auto, cpu or cuda"},
		{[]string{"train", "--model", big, "--data-dir", dataDir}, "--device cpu"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--quantize", "int3"}, "want auto, none or nf4"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--adapter", "x"}, "--adapter is for eval"},
		{[]string{"baseline", "--model", "tiny", "--data-dir", dataDir, "--adapter", "x"}, "flag provided but not defined: -adapter"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--lora-r", "0"}, "must be positive"},
		{[]string{"train", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--resume", "--max-len", "1024", "--limit", "1"}, "no checkpoint"},
	} {
		msg, err := runApp(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to mention %q\n%s", tc.args, err, tc.want, msg)
		}
	}
}
