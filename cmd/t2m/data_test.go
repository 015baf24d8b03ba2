package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataCommandWritesSplits(t *testing.T) {
	dir := t.TempDir()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run([]string{"t2m", "data", "--seed", "3", "--out", dir}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"train", "eval", "held_out"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Count(string(b), "\n")
		if !strings.Contains(out.String(), filepath.Join(dir, name+".jsonl")+" (") || lines == 0 {
			t.Errorf("%s: %d lines; output:\n%s", name, lines, out.String())
		}
	}
}
