package tokenizer

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// promptSystem is the system prompt that scripts/fixtures/make_tokenizer_fixture.py renders.
const promptSystem = "You are a MongoDB query generator. Given a collection schema, a list of allowed operators, " +
	"and a natural language intent, produce a valid MongoDB query as JSON. The output must be a JSON object " +
	"with a 'type' field ('aggregate' or 'find') and the corresponding query body. If the intent references " +
	"fields not in the schema, respond with {\"error\": \"<reason>\"}. Use only the allowed operators."

type promptExample struct {
	Schema struct {
		Collection string `json:"collection"`
		Fields     []struct {
			Name        string   `json:"name"`
			Type        string   `json:"type"`
			Role        string   `json:"role"`
			Description string   `json:"description"`
			EnumValues  []string `json:"enum_values"`
		} `json:"fields"`
	} `json:"schema"`
	AllowedOps struct {
		Stage      []string `json:"stage_operators"`
		Expression []string `json:"expression_operators"`
	} `json:"allowed_ops"`
	Intent string          `json:"intent"`
	Output json.RawMessage `json:"output"`
}

// renderChatML renders an example as the fixture script's render_chatml does: system, user, generation
// prompt, completion, <|im_end|>. It is a test helper that mirrors the script, not t2m's prompt renderer
// (that lives in data/); text digests in the fixture check that the two renderings agree.
func renderChatML(ex *promptExample) string {
	lines := []string{"Collection: " + ex.Schema.Collection, "Fields:"}
	for _, f := range ex.Schema.Fields {
		line := "  - " + f.Name + " (" + f.Type + ", " + f.Role + ")"
		if f.Description != "" {
			line += ": " + f.Description
		}
		if len(f.EnumValues) > 0 {
			line += " [values: " + strings.Join(f.EnumValues, ", ") + "]"
		}
		lines = append(lines, line)
	}
	lines = append(lines, "",
		"Allowed stage operators: "+strings.Join(ex.AllowedOps.Stage, ", "),
		"Allowed expression operators: "+strings.Join(ex.AllowedOps.Expression, ", "),
		"", "Intent: "+ex.Intent)
	return "<|im_start|>system\n" + promptSystem + "<|im_end|>" +
		"\n<|im_start|>user\n" + strings.Join(lines, "\n") + "<|im_end|>" +
		"\n<|im_start|>assistant\n" + string(ex.Output) + "<|im_end|>"
}

// TestHFPromptDigests encodes the full ChatML prompt and completion of every shared example and checks
// the ids against HF's, by digest.
func TestHFPromptDigests(t *testing.T) {
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Prompts map[string][]struct {
			TextSHA string `json:"text_sha"`
			N       int    `json:"n"`
			SHA     string `json:"sha"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	tok := qwen(t)
	total := 0
	for _, split := range sharedSplits {
		path := filepath.Join(sharedDataDir, split)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		want := fx.Prompts[split]
		i := 0
		for ; sc.Scan(); i++ {
			var ex promptExample
			if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
				t.Fatalf("%s:%d: %v", path, i+1, err)
			}
			if i >= len(want) {
				t.Fatalf("%s has more examples than the fixture's %d", split, len(want))
			}
			text := renderChatML(&ex)
			sum := sha256.Sum256([]byte(text))
			if hex.EncodeToString(sum[:])[:16] != want[i].TextSHA {
				t.Fatalf("%s:%d: rendered prompt differs from the fixture script's:\n%s", split, i+1, text)
			}
			if ids := tok.Encode(text); len(ids) != want[i].N || idsDigest(ids) != want[i].SHA {
				t.Errorf("%s:%d: %d ids, HF has %d ids with another digest", split, i+1, len(ids), want[i].N)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if i != len(want) {
			t.Errorf("%s: %d examples, fixture has %d", split, i, len(want))
		}
		total += i
	}
	if total != 2138 {
		t.Errorf("checked %d prompts, the shared data set has 2138", total)
	}
}
