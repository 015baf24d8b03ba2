package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
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

func TestDataCommandStyles(t *testing.T) {
	dir := t.TempDir()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run([]string{"t2m", "data", "--style", "published", "--seed", "5", "--out", dir}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"train", "eval", "held_out"} {
		exs, err := data.ReadExamples(filepath.Join(dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), filepath.Join(dir, name+".jsonl")+" ("+strconv.Itoa(len(exs))+" examples)") || len(exs) < 100 {
			t.Errorf("%s: %d examples; output:\n%s", name, len(exs), out.String())
		}
		// The published style's conventions: the full operator lists in most examples.
		full := 0
		for _, ex := range exs {
			if len(ex.AllowedOps.StageOperators) == len(data.StageOperators) && len(ex.AllowedOps.ExpressionOperators) == len(data.ExpressionOperators) {
				full++
			}
		}
		if full < len(exs)*2/3 {
			t.Errorf("%s: %d of %d examples with the full operator lists, want most (published style)", name, full, len(exs))
		}
	}

	bogus := filepath.Join(t.TempDir(), "bogus")
	err := newApp().Run([]string{"t2m", "data", "--style", "bogus", "--out", bogus})
	if err == nil || !strings.Contains(err.Error(), `unknown data style "bogus"`) || !strings.Contains(err.Error(), "t2m, published") {
		t.Errorf("--style bogus: error %v, want one naming the style and the valid ones", err)
	}
	if _, statErr := os.Stat(bogus); statErr == nil {
		t.Errorf("--style bogus created %s", bogus)
	}
}
