package main

// One test per row of issue 11 ("Hostile input and faults: no panic, no hang, no silent success, nothing
// lost"), each through the command line as a user meets it. The inputs are in testdata/hostile (see its
// README.md) or, for faults, made here. Every test failed on the code before the fix (a panic, an
// out-of-memory, a hang, or exit status 0) and checks the message names the cause.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/internal/runlock"
	"github.com/t2m/t2m/lora"
)

const hostileDir = "testdata/hostile"

// qwenTokenizer is the real Qwen2.5 tokenizer of ../shared.
const qwenTokenizer = "../../../shared/tokenizers/qwen2.5/tokenizer.json"

// hostileData writes the short train/eval/held_out splits into a new folder and returns it.
func hostileData(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dir)
	return dir
}

// trainArgs are the flags of a quick tiny-model run (two updates per epoch) on dataDir into runs/r.
func trainArgs(dataDir, runs string, extra ...string) []string {
	return append([]string{"train", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--run-name", "r",
		"--max-len", "1024", "--limit", "2", "--epochs", "1", "--batch-size", "1", "--grad-accum", "1", "--lr", "1e-2",
		"--lora-r", "2"}, extra...)
}

// wantErr fails unless err is non-nil and err or the output contains every want.
func wantErr(t *testing.T, what string, msg string, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error\n%s", what, msg)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", what, err, w)
		}
	}
}

// noFile fails if path exists.
func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s exists, want nothing written", path)
	}
}

// Row 1: huge token ids in tokenizer.json are refused by name, not a makeslice panic or an OOM.
func TestHostileRow01TokenizerHugeIDs(t *testing.T) {
	data := hostileData(t)
	for _, c := range []struct{ file, want string }{
		{"01_tokenizer_vocab_id_2pow62.json", `vocabulary token "ab" has id 4611686018427387904, outside [0, 16777215]`},
		{"01_tokenizer_vocab_id_2pow31.json", `vocabulary token "ab" has id 2147483648`},
		{"01_tokenizer_added_id_2pow40.json", `added token "<|im_start|>" has id 1099511627776`},
	} {
		path := filepath.Join(hostileDir, c.file)
		runs := t.TempDir()
		msg, err := runApp(t, trainArgs(data, runs, "--tokenizer", path)...)
		wantErr(t, "train --tokenizer "+c.file, msg, err, c.want, path)
		noFile(t, filepath.Join(runs, "r"))
		msg, err = runApp(t, "prompt", "--split", filepath.Join(data, "eval.jsonl"), "--index", "0", "--tokenizer", path)
		wantErr(t, "prompt --tokenizer "+c.file, msg, err, c.want)
	}
}

// Row 2: a tokenizer.json without merges, or without the ChatML added tokens, is refused instead of
// silently tokenizing every prompt into bytes.
func TestHostileRow02TokenizerNoMergesNoAdded(t *testing.T) {
	raw, err := os.ReadFile(qwenTokenizer)
	if err != nil {
		t.Fatalf("%v (the shared material must be checked out beside the repository)", err)
	}
	data := hostileData(t)
	for _, c := range []struct {
		name string
		edit func(doc map[string]any)
		want string
	}{
		{"no merges", func(doc map[string]any) { doc["model"].(map[string]any)["merges"] = []any{} }, "BPE model has no merges"},
		{"no added tokens", func(doc map[string]any) { doc["added_tokens"] = []any{} }, "<|im_start|>, <|im_end|>, <|endoftext|> not among its added_tokens"},
	} {
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		c.edit(doc)
		b, _ := json.Marshal(doc)
		path := writeFile(t, filepath.Join(t.TempDir(), "tokenizer.json"), string(b))
		runs := t.TempDir()
		msg, err := runApp(t, trainArgs(data, runs, "--tokenizer", path)...)
		wantErr(t, "train with "+c.name, msg, err, c.want)
		noFile(t, filepath.Join(runs, "r"))
	}
}

// Row 3: a LoRA rank beyond the projections' sizes is refused before anything is allocated.
func TestHostileRow03HugeRank(t *testing.T) {
	runs := t.TempDir()
	msg, err := runApp(t, trainArgs(hostileData(t), runs, "--lora-r", "100000000")...)
	wantErr(t, "train --lora-r 100000000", msg, err, "rank r=100000000 is larger than", "--lora-r")
	if entries, _ := os.ReadDir(filepath.Join(runs, "r")); len(entries) > 1 { // the lock file only
		t.Errorf("run folder holds %d entries after a refused run", len(entries))
	}
}

// trainedRun trains the quick run (two updates, checkpoint at the end) and returns the data folder, the
// runs folder and the run's checkpoint state.json.
func trainedRun(t *testing.T) (data, runs, state string) {
	t.Helper()
	data, runs = hostileData(t), t.TempDir()
	if msg, err := runApp(t, trainArgs(data, runs)...); err != nil {
		t.Fatalf("train: %v\n%s", err, msg)
	}
	return data, runs, filepath.Join(runs, "r", "checkpoint", "state.json")
}

// editState sets fields of state.json.
func editState(t *testing.T, path string, set map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		st[k] = v
	}
	b, _ := json.Marshal(st)
	writeFile(t, path, string(b))
}

// Row 4: a damaged checkpoint state (window −1, window 99, step 99) is refused on --resume, naming the
// field, instead of a panic, a hang or "done: 101 updates".
func TestHostileRow04DamagedCheckpointState(t *testing.T) {
	data, runs, state := trainedRun(t)
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set  map[string]any
		want string
	}{
		{map[string]any{"window": -1}, "window -1 is outside [0, 2)"},
		{map[string]any{"window": 99}, "window 99 is outside [0, 2)"},
		{map[string]any{"step": 99}, "step 99 does not match epoch 1, window 0"},
		{map[string]any{"epoch": 0, "window": 1, "step": 1}, "adam_step 2 differs from step 1"},
	} {
		writeFile(t, state, string(good))
		editState(t, state, c.set)
		msg, err := runApp(t, trainArgs(data, runs, "--resume")...)
		wantErr(t, fmt.Sprintf("resume with %v", c.set), msg, err, "state.json is damaged", c.want)
		if strings.Contains(msg, "done:") {
			t.Errorf("resume with %v trained:\n%s", c.set, msg)
		}
	}
}

// Row 5: a second command on a run folder that another one is writing is refused, naming the holder.
func TestHostileRow05OneWriterPerRun(t *testing.T) {
	data, runs := hostileData(t), t.TempDir()
	lock, err := runlock.Acquire(filepath.Join(runs, "r"), "t2m train")
	if err != nil {
		t.Fatal(err)
	}
	holder := fmt.Sprintf("t2m train (pid %d", os.Getpid())
	msg, err := runApp(t, trainArgs(data, runs)...)
	wantErr(t, "train while the run is locked", msg, err, "is being written by "+holder, "another --run-name")
	noFile(t, filepath.Join(runs, "r", "metrics.jsonl"))
	msg, err = runApp(t, "baseline", "--model", "tiny", "--data-dir", data, "--output-dir", runs, "--run-name", "r",
		"--limit", "1", "--max-new-tokens", "2")
	wantErr(t, "baseline while the run is locked", msg, err, "is being written by "+holder)
	msg, err = runApp(t, "score", "--split", filepath.Join(data, "eval.jsonl"), "--gold", "--output-dir", runs, "--run-name", "r")
	wantErr(t, "score while the run is locked", msg, err, "is being written by "+holder)
	noFile(t, filepath.Join(runs, "r", "eval_report.json"))
	lock.Release()
	if msg, err := runApp(t, "score", "--split", filepath.Join(data, "eval.jsonl"), "--gold", "--output-dir", runs, "--run-name", "r"); err != nil {
		t.Fatalf("score after the lock was released: %v\n%s", err, msg)
	}
}

// Row 6: a learning rate that is NaN or ≤ 0, and negative counts, are refused before anything is read
// or written.
func TestHostileRow06BadNumbers(t *testing.T) {
	data := hostileData(t)
	for _, c := range []struct{ flag, value, want string }{
		{"--lr", "NaN", "--lr NaN must be a finite number > 0"},
		{"--lr", "-1", "--lr -1 must be a finite number > 0"},
		{"--lr", "0", "--lr 0 must be a finite number > 0"},
		{"--lr", "+Inf", "--lr +Inf must be a finite number > 0"},
		{"--limit", "-1", "--limit -1 must be ≥ 0"},
		{"--save-every", "-1", "--save-every -1 must be ≥ 0"},
		{"--lora-alpha", "NaN", "--lora-alpha NaN must be a finite number"},
		{"--weight-cache-gib", "-1", "--weight-cache-gib -1 must be a finite number of GiB ≥ 0"},
		{"--weight-cache-gib", "NaN", "--weight-cache-gib NaN must be a finite number of GiB ≥ 0"},
		{"--weight-cache-gib", "+Inf", "--weight-cache-gib +Inf must be a finite number of GiB ≥ 0"},
	} {
		runs := t.TempDir()
		msg, err := runApp(t, trainArgs(data, runs, c.flag, c.value)...)
		wantErr(t, "train "+c.flag+" "+c.value, msg, err, c.want)
		noFile(t, filepath.Join(runs, "r"))
	}
	msg, err := runApp(t, "baseline", "--model", "tiny", "--data-dir", data, "--output-dir", t.TempDir(), "--limit", "-1")
	wantErr(t, "baseline --limit -1", msg, err, "--limit -1 must be ≥ 0")
}

// Row 7: when the report cannot be written, the predictions beside it are not replaced either.
func TestHostileRow07ReportsTogether(t *testing.T) {
	dir := t.TempDir()
	split := filepath.Join(hostileDir, "09_split_gold_fails.jsonl")
	preds := writeFile(t, filepath.Join(dir, "p.jsonl"), predLines(`{"type": "find", "filter": {"a": {"$gt": 1}}}`, `{}`))
	runDir := filepath.Join(dir, "runs", "r")
	// The report path is blocked by a folder: nothing may be written, the predictions included.
	if err := os.MkdirAll(filepath.Join(runDir, "09_split_gold_fails_report.json", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	msg, err := runApp(t, "score", "--split", split, "--predictions", preds, "--output-dir", filepath.Join(dir, "runs"), "--run-name", "r")
	wantErr(t, "score with the report path blocked", msg, err, "09_split_gold_fails_report.json: a folder is in the way")
	noFile(t, filepath.Join(runDir, "09_split_gold_fails_predictions.jsonl"))
	entries, _ := os.ReadDir(runDir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary %s left in the run folder", e.Name())
		}
	}
}

// Row 8: a split line with content after its JSON object is an error naming file:line, as the
// predictions reader's is.
func TestHostileRow08TrailingContent(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"08_split_trailing_junk.jsonl", `08_split_trailing_junk.jsonl:2: malformed example: unexpected "junk" after the JSON object`},
		{"08_split_two_objects.jsonl", `08_split_two_objects.jsonl:2: malformed example: unexpected "{\"schema\"`},
	} {
		runs := t.TempDir()
		msg, err := runApp(t, "score", "--split", filepath.Join(hostileDir, c.file), "--gold", "--output-dir", runs)
		wantErr(t, "score --gold "+c.file, msg, err, c.want)
		noFile(t, filepath.Join(runs, "gold"))
	}
}

// Row 9: score --gold fails (exit ≠ 0) when a non-negative example's own gold output fails, naming the
// line, and on an empty split.
func TestHostileRow09GoldMustPass(t *testing.T) {
	runs := t.TempDir()
	split := filepath.Join(hostileDir, "09_split_gold_fails.jsonl")
	msg, err := runApp(t, "score", "--split", split, "--gold", "--output-dir", runs)
	wantErr(t, "score --gold on a failing split", msg, err, "1 non-negative example(s)", split+":2")
	msg, err = runApp(t, "score", "--split", filepath.Join(hostileDir, "09_split_empty.jsonl"), "--gold", "--output-dir", runs)
	wantErr(t, "score --gold on an empty split", msg, err, "has no examples")
}

// Row 10: adapter_config.json decides which modules and layers carry LoRA, as in PEFT: tensors it does
// not cover are an error naming them, and options t2m does not implement are refused by name.
func TestHostileRow10AdapterConfigCoverage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "logits.safetensors")
	src := filepath.Join(fixtureDir, "adapter")
	for _, c := range []struct{ file, want string }{
		{"10_adapter_config_target_subset.json", "layers.0.mlp.gate_proj.lora_A.weight\" is for gate_proj of layer 0, which"},
		{"10_adapter_config_layers_to_transform.json", "is for gate_proj of layer 1, which"},
		{"10_adapter_config_layers_pattern.json", `layers_pattern "blocks" is not supported`},
		{"10_adapter_config_exclude_modules.json", `exclude_modules = ["q_proj"] is not supported`},
	} {
		dir := t.TempDir()
		w, err := os.ReadFile(filepath.Join(src, lora.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := os.ReadFile(filepath.Join(hostileDir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, lora.WeightsFile), string(w))
		writeFile(t, filepath.Join(dir, lora.ConfigFile), string(cfg))
		msg, err := runApp(t, "forward", "--model-dir", fixtureDir, "--adapter", dir, "--ids", "1,2,3", "--out", out)
		wantErr(t, "forward --adapter with "+c.file, msg, err, c.want)
		noFile(t, out)
	}
}

// Row 11: --resume after the training data changed (same number of examples) is refused.
func TestHostileRow11ResumeDataChanged(t *testing.T) {
	data, runs, _ := trainedRun(t)
	train := filepath.Join(data, "train.jsonl")
	raw, err := os.ReadFile(train)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, train, strings.Replace(string(raw), "a over 1", "a over 7", 1))
	msg, err := runApp(t, trainArgs(data, runs, "--resume")...)
	wantErr(t, "resume after the data changed", msg, err, "was written for other training data", "the data changed since")
}

// Row 12: when one of the three splits cannot be written, none is (a folder in the way stands for a
// full disk: both fail before the first rename), and a folder made for them is not left behind.
func TestHostileRow12SplitsTogether(t *testing.T) {
	out := filepath.Join(t.TempDir(), "d")
	if err := os.MkdirAll(filepath.Join(out, "held_out.jsonl"), 0o755); err != nil {
		t.Fatal(err)
	}
	msg, err := runApp(t, "data", "--out", out)
	wantErr(t, "data with held_out.jsonl blocked", msg, err, "held_out.jsonl: a folder is in the way", "nothing replaced")
	noFile(t, filepath.Join(out, "train.jsonl"))
	noFile(t, filepath.Join(out, "eval.jsonl"))
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only the blocking folder", out, len(entries))
	}
}

// Row 13: a checkpoint temporary left by a process killed between the two renames of the swap is removed
// at the next start, and the run resumes from the complete checkpoint.
func TestHostileRow13StaleTemporaries(t *testing.T) {
	data, runs, _ := trainedRun(t)
	runDir := filepath.Join(runs, "r")
	// What a SIGKILL between the renames leaves: the previous checkpoint moved aside, the new one complete
	// in its temporary folder, plus a temporary file of an interrupted write.
	stale := filepath.Join(runDir, ".checkpoint.tmp-123")
	if err := os.Rename(filepath.Join(runDir, "checkpoint"), filepath.Join(runDir, "checkpoint.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(runDir, ".metrics.jsonl.tmp-9"), "x")
	msg, err := runApp(t, trainArgs(data, runs, "--resume")...)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, msg)
	}
	for _, p := range []string{stale, filepath.Join(runDir, ".metrics.jsonl.tmp-9")} {
		noFile(t, p)
	}
	if !strings.Contains(msg, "resuming from") {
		t.Errorf("resume did not resume:\n%s", msg)
	}
}

// Row 14: a run folder named with '|' is one cell of the compare table, not two.
func TestHostileRow14CompareEscapes(t *testing.T) {
	runs := t.TempDir()
	split := filepath.Join(t.TempDir(), "eval.jsonl")
	raw, err := os.ReadFile(filepath.Join(hostileDir, "09_split_gold_fails.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, split, strings.SplitAfter(string(raw), "\n")[0])
	if msg, err := runApp(t, "score", "--split", split, "--gold", "--output-dir", runs, "--run-name", "a|b"); err != nil {
		t.Fatalf("score: %v\n%s", err, msg)
	}
	msg, err := runApp(t, "compare", "--output-dir", runs)
	if err != nil {
		t.Fatal(err)
	}
	var row string // the first table's row (the runs table below has one too)
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, "| a") && row == "" {
			row = l
		}
	}
	if !strings.HasPrefix(row, `| a\|b | eval |`) || strings.Count(row, " | ")+2 != 11+1 {
		t.Errorf("compare row %q: want the run name escaped as a\\|b in one of 11 cells", row)
	}
	_, err = runApp(t, "score", "--split", split, "--gold", "--output-dir", runs, "--run-name", "a\nb")
	wantErr(t, "score --run-name with a line break", "", err, "control characters")
}

// Row 15: a BOM, a folder as forward's --out, and hidden_size not divisible by the heads are errors that
// name those causes.
func TestHostileRow15RightCause(t *testing.T) {
	msg, err := runApp(t, "score", "--split", filepath.Join(hostileDir, "15_split_bom.jsonl"), "--gold", "--output-dir", t.TempDir())
	wantErr(t, "score a split with a BOM", msg, err, "15_split_bom.jsonl:1: the file starts with a UTF-8 byte-order mark")
	msg, err = runApp(t, "score", "--split", filepath.Join(hostileDir, "09_split_gold_fails.jsonl"), "--predictions",
		filepath.Join(hostileDir, "15_predictions_bom.jsonl"), "--output-dir", t.TempDir())
	wantErr(t, "score predictions with a BOM", msg, err, "15_predictions_bom.jsonl:1: the file starts with a UTF-8 byte-order mark")

	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	msg, err = runApp(t, "forward", "--model", "tiny", "--ids", "1,2,3", "--out", dir)
	wantErr(t, "forward --out DIR", msg, err, "--out "+dir+" is a folder")
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("forward --out DIR left files beside it: %d entries", len(entries))
	}

	model := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(hostileDir, "15_config_hidden_not_divisible.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(model, "config.json"), string(cfg))
	msg, err = runApp(t, "forward", "--model-dir", model, "--ids", "1", "--out", filepath.Join(dir, "x.safetensors"))
	wantErr(t, "forward with hidden_size 66 over 4 heads", msg, err, "hidden_size 66 is not a multiple of num_attention_heads 4")
}
