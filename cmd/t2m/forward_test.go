package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/safetensors"
)

const fixtureDir = "../../model/testdata/qwen2_tiny"

// TestForwardMatchesHF runs `t2m forward` on the fixture model with its PEFT adapter on row 0 of the
// fixture batch (the unpadded row), twice as a batch of 2, and compares with transformers+PEFT's logits.
func TestForwardMatchesHF(t *testing.T) {
	refs, err := safetensors.Open(filepath.Join(fixtureDir, "references.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer refs.Close()
	ids, err := refs.Float32("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := refs.Info("input_ids")
	seq := info.Shape[1]
	var row []string
	for _, v := range ids[:seq] {
		row = append(row, fmt.Sprint(int(v)))
	}
	for _, tc := range []struct{ adapter, ref string }{{"", "base.logits"}, {filepath.Join(fixtureDir, "adapter"), "lora.logits"}} {
		out := filepath.Join(t.TempDir(), "logits.safetensors")
		args := []string{"forward", "--model-dir", fixtureDir, "--ids", strings.Join(row, ",") + ";" + strings.Join(row, ","), "--out", out}
		if tc.adapter != "" {
			args = append(args, "--adapter", tc.adapter)
		}
		if msg, err := runApp(t, args...); err != nil {
			t.Fatalf("%v: %v", msg, err)
		}
		f, err := safetensors.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Float32("logits")
		gi, _ := f.Info("logits")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := refs.Float32(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		v := len(want) / (2 * seq)
		if fmt.Sprint(gi.Shape) != fmt.Sprint([]int{2, seq, v}) {
			t.Fatalf("logits shape %v, want [2 %d %d]", gi.Shape, seq, v)
		}
		want = want[:seq*v] // row 0
		var maxDiff, maxRef float64
		for b := range 2 {
			for i, w := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[b*seq*v+i]-w)))
				maxRef = math.Max(maxRef, math.Abs(float64(w)))
			}
		}
		if maxDiff/maxRef > 1e-4 {
			t.Errorf("%s: max relative error %.3g > 1e-4", tc.ref, maxDiff/maxRef)
		}
	}
}

func TestForwardBadInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.safetensors")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", "tiny", "--ids", "1,2;3"}, "rows must have equal lengths"},
		{[]string{"--model", "tiny", "--ids", "1,-2"}, `position 2: "-2" is not a token id`},
		{[]string{"--model", "tiny", "--ids", "1;;2"}, "row 2 is empty"},
		{[]string{"--model-dir", fixtureDir, "--ids", "256"}, "outside the vocabulary"},
		{[]string{"--model", "qwen2.5-coder-7b", "--ids", "1"}, "--model-dir"},
		{[]string{"--model", "tiny", "--quantize", "int8", "--ids", "1"}, "want none or nf4"},
		{[]string{"--ids", "1"}, "give --model-dir DIR or --model NAME"},
		{[]string{"--model-dir", t.TempDir(), "--ids", "1"}, "config.json"},
	} {
		msg, err := runApp(t, append(append([]string{"forward"}, tc.args...), "--out", out)...)
		if err == nil || !strings.Contains(err.Error()+msg, tc.want) {
			t.Errorf("forward %v: error %v (output %q), want one containing %q", tc.args, err, msg, tc.want)
		}
	}
}
