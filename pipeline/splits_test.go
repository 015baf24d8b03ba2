package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRunName(t *testing.T) {
	for name, ok := range map[string]bool{"": true, "r8": true, "tiny_r4.v2": true, "../x": false, "a/b": false, `a\b`: false, "x..y": false} {
		if err := CheckRunName(name); (err == nil) != ok {
			t.Errorf("CheckRunName(%q) = %v", name, err)
		}
	}
}

func TestReadSplit(t *testing.T) {
	dir := writeSplits(t)
	exs, path, err := ReadSplit(dir, "eval", 1)
	if err != nil || len(exs) != 1 || path != filepath.Join(dir, "eval.jsonl") {
		t.Fatalf("limit 1: %d examples from %s, %v", len(exs), path, err)
	}
	if exs, _, err = ReadSplit(dir, "eval", 0); err != nil || len(exs) != 2 {
		t.Fatalf("limit 0: %d examples, %v", len(exs), err)
	}
	if _, _, err = ReadSplit(filepath.Join(dir, "missing"), "eval", 0); err == nil || !strings.Contains(err.Error(), "t2m data --out") {
		t.Errorf("missing split: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err = ReadSplit(dir, "empty", 0); err == nil || !strings.Contains(err.Error(), "no examples") {
		t.Errorf("empty split: %v", err)
	}
}
