package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
)

const askSchema = `{"collection": "posts", "domain": "social", "fields": [{"name": "likes", "type": "int", "role": "measure", "description": "Number of likes"}]}`

// t2m ask on the tiny model: one intent from the flag, then two from stdin with the model loaded once;
// each answer shows the raw output, the query and every layer's verdict.
func TestAskCommand(t *testing.T) {
	dir := t.TempDir()
	schema := writeFile(t, filepath.Join(dir, "posts.json"), askSchema)
	base := []string{"ask", "--model", "tiny", "--device", "cpu", "--schema", schema, "--max-new-tokens", "4", "--max-len", "2048"}
	out, err := runApp(t, append(base, "--intent", "Posts with over 10 likes")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"model tiny (none) on cpu, greedy", "intent: Posts with over 10 likes", "raw output:",
		"syntax          FAIL", "operators       ", "fields          ", "generalization  posts is a training schema", "overall         FAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	app := newApp()
	var buf bytes.Buffer
	app.Writer, app.ErrWriter, app.Reader = &buf, &buf, strings.NewReader("Count posts\n\n  Top 3 posts by likes \n")
	if err := app.Run(append([]string{"t2m"}, base...)); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got := buf.String(); strings.Count(got, "\nintent: ") != 2 || !strings.Contains(got, "intent: Top 3 posts by likes\n") ||
		strings.Count(got, "model tiny") != 1 {
		t.Errorf("stdin loop output:\n%s", got)
	}
}

// ask's bad input fails before any model loads, naming the value.
func TestAskCommandRefuses(t *testing.T) {
	dir := t.TempDir()
	schema := writeFile(t, filepath.Join(dir, "posts.json"), askSchema)
	split := writeFile(t, filepath.Join(dir, "eval.jsonl"), strings.Repeat(`{"schema": `+askSchema+`, "allowed_ops": {"stage_operators": ["$match"], "expression_operators": ["$gt"]}, "intent": "x", "output": {"type": "find", "filter": {}}, "is_negative": false}`+"\n", 2))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--schema", schema, "--intent", "x", "--temperature", "-0.5"}, "--temperature -0.5"},
		{[]string{"--schema", schema, "--intent", "x", "--temperature", "1", "--top-p", "1.5"}, "--top-p 1.5"},
		{[]string{"--split", split, "--index", "2"}, "--index 2"},
		{[]string{"--split", split, "--schema", schema}, "not both"},
		{[]string{"--intent", "x"}, "give a schema"},
		{[]string{"--schema", schema, "--intent", "x", "--stage-ops", "match"}, `"match"`},
		{[]string{"--schema", filepath.Join(dir, "none.json"), "--intent", "x"}, "none.json"},
	} {
		out, err := runApp(t, append([]string{"ask", "--model", "no-such-model"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q\n%s", tc.args, err, tc.want, out)
		}
	}
}

// ask --split --index answers the example's intent and shows its gold query.
func TestAskCommandSplit(t *testing.T) {
	dir := t.TempDir()
	split := writeFile(t, filepath.Join(dir, "eval.jsonl"), `{"schema": `+askSchema+`, "allowed_ops": {"stage_operators": ["$match"], "expression_operators": ["$gt"]}, "intent": "Posts with likes over 3", "output": {"type": "find", "filter": {"likes": {"$gt": 3}}}, "is_negative": false}`+"\n")
	out, err := runApp(t, "ask", "--model", "tiny", "--device", "cpu", "--split", split, "--index", "0", "--max-new-tokens", "3",
		"--max-len", "2048", "--temperature", "0.8", "--seed", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"intent: Posts with likes over 3", `gold            {"type": "find"`, "sampling at temperature 0.8, top-p 1, seed 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// --version names the module version, the VCS revision (marked -dirty for a modified tree) and Go.
func TestVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/t2m/t2m", Version: "v0.0.0-2026-abc"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}}}
	if got, want := formatVersion(bi), "v0.0.0-2026-abc, revision abc123-dirty, committed 2026-11-30T10:00:00Z, go1.26.8"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	bi.Settings, bi.Main.Version = nil, ""
	if got := formatVersion(bi); !strings.Contains(got, "(devel)") || !strings.Contains(got, "revision unknown") {
		t.Errorf("no VCS: %q", got)
	}
	out, err := runApp(t, "--version")
	if err != nil || !strings.HasPrefix(out, "t2m version ") || !strings.Contains(out, "go1.") {
		t.Errorf("t2m --version: %q, %v", out, err)
	}
}

// t2m merge then t2m export --gguf on the tiny model with an adapter of non-zero B.
func TestMergeExportCommands(t *testing.T) {
	tok := "../../../shared/tokenizers/qwen2.5/tokenizer.json"
	if _, err := os.Stat(tok); err != nil {
		t.Skip("no ../shared tokenizer")
	}
	dir := t.TempDir()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(lora.Config{R: 2}, reg.Config.NumLayers, reg.Config.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range a.Pairs {
		p.B[0] = 0.5
	}
	adapter := filepath.Join(dir, "adapter")
	if err := a.Save(adapter); err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(dir, "merged")
	out, err := runApp(t, "merge", "--model", "tiny", "--adapter", adapter, "--tokenizer", tok, "--out", merged)
	if err != nil || !strings.Contains(out, "r 2, scaling 2") || !strings.Contains(out, "copied tokenizer.json") {
		t.Fatalf("merge: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "m.gguf")
	out, err = runApp(t, "export", "--model", merged, "--gguf", file, "--type", "q8_0")
	if err != nil || !strings.Contains(out, "27 tensors (q8_0), 152064 tokens") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if _, err := runApp(t, "export", "--model", merged, "--gguf", file, "--type", "q4"); err == nil || !strings.Contains(err.Error(), `"q4"`) {
		t.Errorf("--type q4: %v", err)
	}
}
