package pipeline

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
)

// llamaCppResult is what scripts/gguf/check_gguf.mjs prints.
type llamaCppResult struct {
	Tokenize []int   `json:"tokenize"`
	Tokens   []int32 `json:"tokens"`
	EOS      int     `json:"eos"`
}

// runLlamaCpp decodes n tokens greedily from ids with real llama.cpp (node-llama-cpp) on the GGUF file.
func runLlamaCpp(t *testing.T, dir, file, prompt string, ids []int32, n int) llamaCppResult {
	t.Helper()
	req, err := json.Marshal(map[string]any{"model": file, "prompt": prompt, "ids": ids, "n": n})
	if err != nil {
		t.Fatal(err)
	}
	reqFile := file + ".request.json"
	if err := os.WriteFile(reqFile, req, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "../scripts/gguf/check_gguf.mjs", reqFile)
	cmd.Env = append(os.Environ(), "NODE_LLAMA_CPP_DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node check_gguf.mjs %s: %v\n%s", file, err, stderr)
	}
	var res llamaCppResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("check_gguf.mjs printed %q: %v", out, err)
	}
	return res
}

// Real llama.cpp loads t2m's GGUF of a merged tiny model (the Qwen2.5 tokenizer), tokenizes the ChatML
// prompt into t2m's ids, and decodes greedily the tokens t2m decodes from the merged directory: exactly for
// f32 and bf16; Q8_0 (whose matrix products also quantize the activations) is reported.
//
// Needs node and node-llama-cpp@3.21.1 installed in $NODE_LLAMA_CPP_DIR (`npm install --prefix DIR
// node-llama-cpp@3.21.1`); skipped otherwise (CI has neither).
func TestGGUFWithLlamaCpp(t *testing.T) {
	dir := os.Getenv("NODE_LLAMA_CPP_DIR")
	if dir == "" {
		t.Skip("NODE_LLAMA_CPP_DIR is not set (npm install --prefix DIR node-llama-cpp@3.21.1)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-llama-cpp")); err != nil {
		t.Skipf("no node-llama-cpp in %s", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	tmp := t.TempDir()
	merged, _ := exportTiny(t, tmp, "f32")
	tok, err := tokenizer.Load(qwenTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := data.ParseExample([]byte(shortExample(t, "museum_exhibits", "List the exhibits with a above 1")))
	if err != nil {
		t.Fatal(err)
	}
	prompt := data.Prompt(ex)
	var ids []int32
	for _, id := range tok.Encode(prompt) {
		ids = append(ids, int32(id))
	}
	w, err := model.LoadDir(merged, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	outs, err := g.Generate([][]int32{ids}, model.GenerateOptions{MaxNewTokens: n})
	if err != nil {
		t.Fatal(err)
	}
	want := outs[0]
	for _, typ := range []string{"f32", "bf16", "q8_0"} {
		_, file := exportTiny(t, tmp, typ)
		got := runLlamaCpp(t, dir, file, prompt, ids, n)
		if !slices.Equal(got.Tokenize, intsOf(ids)) {
			t.Errorf("%s: llama.cpp tokenizes the prompt into %d ids, t2m into %d; first difference at %d", typ,
				len(got.Tokenize), len(ids), firstDiff(got.Tokenize, intsOf(ids)))
		}
		if got.EOS != tokenizer.ImEndID {
			t.Errorf("%s: llama.cpp's eos is %d, want %d", typ, got.EOS, tokenizer.ImEndID)
		}
		same := firstDiff(intsOf(got.Tokens), intsOf(want))
		t.Logf("%s: llama.cpp %v\n          t2m       %v\n          equal for the first %d of %d tokens", typ, got.Tokens, want, same, n)
		if typ != "q8_0" && same < n {
			t.Errorf("%s: llama.cpp's greedy tokens differ from t2m's at token %d", typ, same)
		}
	}
}

// intsOf widens ids.
func intsOf(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// firstDiff is the first index where a and b differ (the shorter length when one is a prefix of the other).
func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
