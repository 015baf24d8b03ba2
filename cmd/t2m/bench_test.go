package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// `t2m bench generate --anchor` runs the anchor with the same batches, prompt and new tokens after t2m's own
// lines, twice with --anchor-compile (the second time with --compile), and prints a ratio line per batch
// size; --anchor-compile alone is refused.
func TestBenchGenerateWithAnchor(t *testing.T) {
	script := writeFile(t, filepath.Join(t.TempDir(), "anchor.sh"), `[ "$1 $2 $3 $4 $5 $6" = "--batches 1,2 --prompt 8 --new 2" ] || { echo "bad args: $*" >&2; exit 3; }
echo "{\"system\": \"hf-fake$7\", \"batch\": 1, \"new_tok_per_s\": 1.0}"
echo "{\"system\": \"hf-fake$7\", \"batch\": 2, \"new_tok_per_s\": 2.0}"
`)
	out, err := runApp(t, "bench", "generate", "--device", "cpu", "--model", "tiny", "--layers", "1", "--batches", "1,2",
		"--prompt", "8", "--new", "2", "--repeats", "1", "--anchor", script, "--anchor-compile", "--python", "sh")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{`"system":"t2m-generate-cpu"`, `"system": "hf-fake"`, `"system": "hf-fake--compile"`,
		`{"ratio":"t2m / hf-fake","batch":2,`, `{"ratio":"t2m / hf-fake--compile","batch":1,`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if _, err := runApp(t, "bench", "generate", "--device", "cpu", "--model", "tiny", "--anchor-compile"); err == nil ||
		!strings.Contains(err.Error(), "--anchor SCRIPT") {
		t.Errorf("--anchor-compile without --anchor: %v", err)
	}
}
