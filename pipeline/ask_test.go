package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/model"
)

// askExample is shortExample's request.
func askExample(t *testing.T) data.Example {
	t.Helper()
	ex, err := data.ParseExample([]byte(shortExample(t, "museum_exhibits", "a over 1")))
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// ask goes through the device registry: on a (fake) GPU whose generator answers the gold query, the answer
// is extracted, pretty-printed and passes every layer; the held-out collection is flagged.
func TestAskThroughRegistry(t *testing.T) {
	var calls [][]int
	closed := false
	gen := &fakeGenerator{out: "Here: " + findA1 + " done", calls: &calls, closed: &closed}
	withFakeCUDA(t, nil, gen)
	a, err := NewAsker(AskOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cuda"}, MaxLen: 2048, MaxNewTokens: 256,
		HeldOutCollections: []string{"museum_exhibits"}})
	if err != nil {
		t.Fatal(err)
	}
	ans, err := a.Ask(askExample(t))
	if err != nil {
		t.Fatal(err)
	}
	r := ans.Result
	if !r.PassedAll || !r.HeldOut || !r.ExactMatch || r.Prediction != findA1 || len(calls) != 1 {
		t.Errorf("answer %+v after %v calls", r, calls)
	}
	if !strings.Contains(ans.Pretty, "\n  \"filter\": {") {
		t.Errorf("not pretty-printed: %q", ans.Pretty)
	}
	if !strings.Contains(a.Describe(), "fake GPU") {
		t.Errorf("describe %q", a.Describe())
	}
	if err := a.Close(); err != nil || !closed {
		t.Errorf("close: %v, closed %v", err, closed)
	}
}

// On the CPU with the tiny model: temperature 0 gives the greedy answer (the generator's own), the same
// seed gives the same answer, and out-of-range sampling values are refused before the model loads.
func TestAskTinySampling(t *testing.T) {
	ask := func(s model.Sampling) *Answer {
		a, err := NewAsker(AskOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cpu"}, MaxLen: 2048, MaxNewTokens: 6, Sampling: s})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		ans, err := a.Ask(askExample(t))
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	greedy := ask(model.Sampling{TopP: 1})
	if greedy.NewTokens == 0 || greedy.PromptTokens < 100 {
		t.Fatalf("greedy answer of %d tokens after %d", greedy.NewTokens, greedy.PromptTokens)
	}
	if again := ask(model.Sampling{Temperature: 0, TopP: 0.3, Seed: 4}); again.Result.RawOutput != greedy.Result.RawOutput {
		t.Errorf("temperature 0: %q, greedy %q", again.Result.RawOutput, greedy.Result.RawOutput)
	}
	s := model.Sampling{Temperature: 1.5, TopP: 0.95, Seed: 12}
	a, b := ask(s), ask(s)
	if a.Result.RawOutput != b.Result.RawOutput {
		t.Errorf("seed 12 twice: %q and %q", a.Result.RawOutput, b.Result.RawOutput)
	}
	for _, bad := range []model.Sampling{{Temperature: -1, TopP: 1}, {Temperature: 1, TopP: 0}, {Temperature: 1, TopP: 2}} {
		_, err := NewAsker(AskOptions{ModelOptions: ModelOptions{Model: "no-such-model"}, MaxLen: 8, MaxNewTokens: 8, Sampling: bad})
		if err == nil || !strings.Contains(err.Error(), "--t") {
			t.Errorf("%+v: %v, want the sampling error first", bad, err)
		}
	}
}

func TestReadSchema(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := ReadSchema(write(`{"collection": "posts", "domain": "social", "fields": [{"name": "likes", "type": "int", "role": "measure", "description": "n"}]}`))
	if err != nil || s.Collection != "posts" || len(s.Fields) != 1 || s.Fields[0].Name != "likes" {
		t.Fatalf("%+v, %v", s, err)
	}
	for body, want := range map[string]string{
		`{"collection": "p", "fields": [{"name": "a"}], "extra": 1}`: "extra",
		`{"fields": [{"name": "a"}]}`:                                "collection",
		`{"collection": "p", "fields": []}`:                          "fields",
		`{"collection": "p", "fields": [{"type": "int"}]}`:           "name",
		`{"collection": "p", "fields": [{"name": "a"}]} {}`:          "more than one",
		`[1, 2]`: "schema object",
	} {
		if _, err := ReadSchema(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %q", body, err, want)
		}
	}
}
