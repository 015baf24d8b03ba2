package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/pipeline"
	"github.com/t2m/t2m/train"
)

// quickTrain are train's flags for one quick update of the tiny model on writeSplits' data.
func quickTrain(dataDir, runs string, extra ...string) []string {
	return append([]string{"train", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--limit", "2",
		"--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--save-every", "0"}, extra...)
}

// recordedConfig reads the fingerprint a run's training_config.json records.
func recordedConfig(t *testing.T, runDir string) train.Fingerprint {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(runDir, pipeline.TrainConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Config train.Fingerprint `json:"config"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Config
}

func newDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplits(t, dir)
	return dir
}

// A recipe file's values apply (YAML integers where floats are wanted, a list of target modules), flags
// on the command line override them, and the run records the result. TOML works the same way.
func TestTrainRecipeFileAndOverrides(t *testing.T) {
	t.Setenv(pipeline.TokenizerEnv, "")
	dataDir := newDataDir(t)
	dir := t.TempDir()
	yamlRecipe := writeFile(t, filepath.Join(dir, "recipe.yaml"), `# a recipe
lora-r: 4
lora-alpha: 8
lora-dropout: 0
target-modules: [q_proj, down_proj]
lr-scheduler: linear
warmup-ratio: 0
weight-decay: 0
max-grad-norm: 2
lr: 1e-3
max-len: 1024
run-name: from-recipe
`)
	runs := filepath.Join(dir, "runs")
	msg, err := runApp(t, quickTrain(dataDir, runs, "--config", yamlRecipe, "--lr-scheduler", "constant", "--lora-r", "2")...)
	if err != nil {
		t.Fatalf("train --config: %v\n%s", err, msg)
	}
	c := recordedConfig(t, filepath.Join(runs, "from-recipe"))
	if c.Rank != 2 || c.Alpha != 8 || c.Dropout != 0 || c.Targets != "down_proj,q_proj" || c.Scheduler != "constant" ||
		c.WarmupRatio != 0 || c.WeightDecay != 0 || c.MaxGradNorm != 2 || c.LR != 1e-3 || c.MaxLen != 1024 {
		t.Errorf("recorded config %+v: want the recipe's values with --lr-scheduler constant and --lora-r 2 from the flags", c)
	}
	if !strings.Contains(msg, "--max-len 1024") {
		t.Errorf("the evaluate-it line does not carry the recipe's --max-len:\n%s", msg)
	}

	tomlRecipe := writeFile(t, filepath.Join(dir, "recipe.toml"), "lora-r = 3\nweight-decay = 1\ntarget-modules = \"v_proj\"\nmax-len = 1024\nrun-name = \"toml\"\n")
	if msg, err := runApp(t, quickTrain(dataDir, runs, "--config", tomlRecipe)...); err != nil {
		t.Fatalf("train --config recipe.toml: %v\n%s", err, msg)
	}
	if c := recordedConfig(t, filepath.Join(runs, "toml")); c.Rank != 3 || c.WeightDecay != 1 || c.Targets != "v_proj" {
		t.Errorf("TOML recipe: recorded config %+v", c)
	}
}

// Bad recipes and recipe flags: an unknown key names it and the accepted keys, a wrong type names the
// key, an unknown target module or schedule names the accepted values; nothing is written.
func TestTrainBadRecipeAndFlags(t *testing.T) {
	dataDir := newDataDir(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	for _, tc := range []struct {
		recipe string // "" : no --config
		args   []string
		want   []string
	}{
		{"lora_r: 4\n", nil, []string{`unknown key "lora_r" (did you mean "lora-r"?`, "accepted keys: batch-size, data-dir,", "weight-decay"}},
		{"lora-rank: 4\n", nil, []string{`unknown key "lora-rank"`, "lora-dropout, lora-r,"}},
		{"resume: true\n", nil, []string{`unknown key "resume" (--resume is given on the command line only)`}},
		{"lora-r: four\n", nil, []string{`key "lora-r": four is not a whole number`}},
		{"lr: [1]\n", nil, []string{`key "lr": [1] is not a number`}},
		{"lr: 1e-3\n", []string{"--config", filepath.Join(dir, "recipe.ini")}, []string{`unknown recipe format ".ini"`}},
		{"", []string{"--config", filepath.Join(dir, "missing.yaml")}, []string{"--config", "missing.yaml"}},
		{"", []string{"--target-modules", "q_proj,qkv_proj"}, []string{`--target-modules: unknown target module "qkv_proj": accepted are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`}},
		{"target-modules: [q_proj, mlp]\n", nil, []string{`unknown target module "mlp"`}},
		{"", []string{"--lr-scheduler", "step"}, []string{`--lr-scheduler: unknown learning-rate schedule "step": accepted are cosine, linear, constant`}},
		{"", []string{"--warmup-ratio", "2"}, []string{"--warmup-ratio 2 must be in [0, 1]"}},
		{"", []string{"--lora-dropout", "1"}, []string{"--lora-dropout 1 must be in [0, 1)"}},
		{"", []string{"--max-grad-norm", "-1"}, []string{"--max-grad-norm -1"}},
		{"", []string{"--weight-decay", "-1"}, []string{"--weight-decay -1"}},
		{"", []string{"--adapter", "x"}, []string{"--adapter is for eval", "--init-adapter"}},
	} {
		args := tc.args
		if tc.recipe != "" {
			path := writeFile(t, filepath.Join(dir, "recipe.yaml"), tc.recipe)
			if args == nil {
				args = []string{"--config", path}
			}
		}
		msg, err := runApp(t, quickTrain(dataDir, runs, args...)...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("recipe %q %v: err %v, want %q\n%s", tc.recipe, args, err, w, msg)
			}
		}
		if _, err := os.Stat(runs); err == nil {
			t.Fatalf("recipe %q %v: the refused run wrote %s", tc.recipe, args, runs)
		}
	}
}

// baseline and eval show and accept no training flag.
func TestEvalHasNoTrainingFlags(t *testing.T) {
	for _, cmd := range []string{"baseline", "eval"} {
		help, err := runApp(t, cmd, "--help")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"--epochs", "--lr ", "--lora-r", "--seed", "--lora-dropout", "--target-modules", "--lr-scheduler",
			"--warmup-ratio", "--weight-decay", "--max-grad-norm", "--init-adapter", "--config", "--resume", "--save-every", "--batch-size"} {
			if strings.Contains(help, f) {
				t.Errorf("%s --help lists %s", cmd, f)
			}
		}
		for _, f := range []string{"--model", "--tokenizer", "--max-len", "--limit", "--data-dir", "--max-new-tokens"} {
			if !strings.Contains(help, f) {
				t.Errorf("%s --help lacks %s", cmd, f)
			}
		}
		for _, args := range [][]string{{"--epochs", "99"}, {"--lr", "5"}, {"--lora-dropout", "0.1"}, {"--config", "r.yaml"}} {
			msg, err := runApp(t, append([]string{cmd, "--model", "tiny"}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: "+strings.Replace(args[0], "--", "-", 1)) {
				t.Errorf("%s %v: err %v, want a usage error\n%s", cmd, args, err, msg)
			}
		}
	}
	help, _ := runApp(t, "train", "--help")
	for _, f := range []string{"--lora-dropout", "--target-modules", "--warmup-ratio", "--lr-scheduler", "--weight-decay", "--max-grad-norm", "--init-adapter", "--config"} {
		if !strings.Contains(help, f) {
			t.Errorf("train --help lacks %s", f)
		}
	}
	if strings.Contains(help, "--adapter ") {
		t.Error("train --help lists --adapter (eval's)")
	}
}

// The obvious first run keeps its examples with the built-in byte tokenizer (--max-len defaults to 2048
// there), warns that its one update has learning rate 0, and prints an eval command with the run's data
// folder, --max-len and --limit.
func TestFirstRunTeaches(t *testing.T) {
	t.Setenv(pipeline.TokenizerEnv, "")
	dataDir := newDataDir(t) // writeSplits' prompts are about 550 bytes: all dropped at 512
	runs := filepath.Join(t.TempDir(), "runs")
	msg, err := runApp(t, "train", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--limit", "2", "--epochs", "1")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, msg)
	}
	for _, want := range []string{
		"tokenizer: the built-in byte tokenizer",
		"max-len: 2048 (the byte tokenizer's default",
		"train: 2 examples, 2 kept",
		"warning: the only update of this run has learning rate 0",
		"evaluate it: t2m eval --model tiny --adapter " + filepath.Join(runs, "tiny_r8", "adapter") + " --data-dir " + dataDir +
			" --output-dir " + runs + " --max-len 2048 --limit 2\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("train output lacks %q:\n%s", want, msg)
		}
	}
	// baseline takes the same default.
	msg, err = runApp(t, "baseline", "--model", "tiny", "--data-dir", dataDir, "--output-dir", runs, "--limit", "1", "--max-new-tokens", "1")
	if err != nil || strings.Contains(msg, "were cut") {
		t.Errorf("baseline with the byte tokenizer: %v (prompts should fit 2048)\n%s", err, msg)
	}
}

// With the real Qwen2.5 tokenizer found in $T2M_TOKENIZER (or --data-dir), tiny trains on its tokens at
// --max-len 512, and the printed eval command names that tokenizer and runs as printed.
func TestTinyUsesFoundTokenizer(t *testing.T) {
	tok, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "tokenizers", "qwen2.5", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tok); err != nil {
		t.Skipf("no Qwen2.5 tokenizer beside the repository: %v", err)
	}
	t.Setenv(pipeline.TokenizerEnv, tok)
	dataDir := newDataDir(t)
	runs := filepath.Join(t.TempDir(), "runs")
	msg, err := runApp(t, quickTrain(dataDir, runs)...)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, msg)
	}
	if !strings.Contains(msg, "tokenizer: "+tok+" (from $T2M_TOKENIZER)") || strings.Contains(msg, "max-len: 2048") {
		t.Errorf("train output:\n%s", msg)
	}
	_, line, ok := strings.Cut(msg, "evaluate it: ")
	line = strings.TrimSpace(line)
	want := " --max-len 512 --limit 2 --tokenizer " + tok
	if !ok || !strings.HasSuffix(line, want) {
		t.Fatalf("evaluate-it line %q, want it to end with %q", line, want)
	}
	// Run it as printed (no argument needs quoting here), with the environment no longer pointing there.
	t.Setenv(pipeline.TokenizerEnv, "")
	args := append(strings.Fields(strings.TrimPrefix(line, "t2m ")), "--max-new-tokens", "2")
	if msg, err := runApp(t, args...); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, msg)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"runs/a_b-1.2": "runs/a_b-1.2", "my runs": "'my runs'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// ask finds the tiny model's tokenizer as train does: $T2M_TOKENIZER (here a missing file, whose path the
// error names), else --split's folder's tokenizer.json.
func TestAskFindsTokenizer(t *testing.T) {
	dataDir := newDataDir(t)
	missing := filepath.Join(t.TempDir(), "nothere.json")
	t.Setenv(pipeline.TokenizerEnv, missing)
	msg, err := runApp(t, "ask", "--model", "tiny", "--split", filepath.Join(dataDir, "eval.jsonl"), "--index", "0", "--max-new-tokens", "1")
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ask with $T2M_TOKENIZER=%s: %v\n%s", missing, err, msg)
	}
	t.Setenv(pipeline.TokenizerEnv, "")
	writeFile(t, filepath.Join(dataDir, "tokenizer.json"), "{not json")
	msg, err = runApp(t, "ask", "--model", "tiny", "--split", filepath.Join(dataDir, "eval.jsonl"), "--index", "0", "--max-new-tokens", "1")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dataDir, "tokenizer.json")) {
		t.Errorf("ask with a tokenizer.json beside --split: %v\n%s", err, msg)
	}
}
