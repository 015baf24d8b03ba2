package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sharedData = "../../shared/data/text-to-mongo"

func TestReadSharedSplits(t *testing.T) {
	want := map[string]int{"train": 1544, "eval": 171, "held_out": 423}
	for split, n := range want {
		exs, err := ReadExamples(filepath.Join(sharedData, split+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if len(exs) != n {
			t.Errorf("%s: %d examples, want %d", split, len(exs), n)
		}
	}
}

func TestReadExamplesMalformedNamesLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.jsonl")
	good := `{"schema":{"collection":"c","domain":"d","fields":[{"name":"a","type":"int","role":"measure","description":""}]},"allowed_ops":{"stage_operators":[],"expression_operators":[]},"intent":"x","output":{"type":"find","filter":{}},"is_negative":false}`
	if err := os.WriteFile(p, []byte(good+"\n"+good[:40]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadExamples(p)
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Fatalf("want error naming bad.jsonl:2, got %v", err)
	}
}
