package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
)

// byteTok is a fake tokenizer: one id per byte.
type byteTok struct{}

func (byteTok) Encode(s string) []int {
	ids := make([]int, len(s))
	for i := range len(s) {
		ids[i] = int(s[i])
	}
	return ids
}

func (byteTok) Decode(ids []int) string {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	return string(b)
}

func TestPrintPromptWithTokens(t *testing.T) {
	exs, err := data.ReadExamples("../../../shared/data/text-to-mongo/eval.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	ex := exs[3]
	completion, _ := data.Completion(ex)
	p, c := len(data.Prompt(ex)), len(completion)

	var out bytes.Buffer
	if err := printPrompt(&out, exs, 3, byteTok{}, p+c); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, data.Prompt(ex)+"=== completion ===\n"+completion+"\n") {
		t.Errorf("prompt and completion not printed verbatim:\n%s", s)
	}
	if strings.Count(s, " yes  ") != c || strings.Count(s, "    -  ") != p {
		t.Errorf("want %d loss and %d no-loss token lines:\n%s", c, p, s[len(s)-400:])
	}

	out.Reset()
	if err := printPrompt(&out, exs, 3, byteTok{}, p+2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "keeps 2 of") || strings.Count(out.String(), " yes  ") != 2 {
		t.Errorf("truncation to 2 completion tokens not shown:\n%s", out.String()[len(out.String())-300:])
	}
}
