package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
)

// findA1 is the gold output of every test example: a valid query that passes the four layers.
const findA1 = `{"type": "find", "filter": {"a": {"$gt": 1}}}`

// shortExample is a valid example with a one-field schema, so that its byte-token prompt stays near 550
// tokens and a training step of the tiny model takes about a second.
func shortExample(t *testing.T, collection, intent string) string {
	t.Helper()
	ex := map[string]any{
		"schema":      map[string]any{"collection": collection, "domain": "d", "fields": []any{map[string]any{"name": "a", "type": "int", "role": "measure", "description": ""}}},
		"allowed_ops": map[string]any{"stage_operators": []string{"$match"}, "expression_operators": []string{"$gt"}},
		"intent":      intent,
		"output":      json.RawMessage(findA1),
		"is_negative": false,
	}
	b, err := json.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// writeSplits writes train/eval/held_out.jsonl with two short examples each into a new folder and
// returns it.
func writeSplits(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for split, coll := range map[string]string{"train": "c", "eval": "c", "held_out": "museum_exhibits"} {
		body := shortExample(t, coll, "a over 1") + shortExample(t, coll, "a above 1")
		if err := os.WriteFile(filepath.Join(dir, split+".jsonl"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeGenerator answers every prompt with the byte tokens of out (the tiny model's tokenizer).
type fakeGenerator struct {
	out    string
	calls  *[][]int // per Generate call: its prompts and slots
	closed *bool
	// onCall, when set, runs after each Generate call with the number of calls so far.
	onCall func(n int)
}

func (g fakeGenerator) Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error) {
	*g.calls = append(*g.calls, []int{len(prompts), opt.Slots})
	if g.onCall != nil {
		g.onCall(len(*g.calls))
	}
	ids := tokenizer.Bytes().Encode(g.out)
	res := make([][]int32, len(prompts))
	for i := range prompts {
		for _, id := range ids[:min(len(ids), opt.MaxNewTokens)] {
			res[i] = append(res[i], int32(id))
		}
	}
	return res, nil
}

func (g fakeGenerator) Describe() string { return "fake GPU" }

func (g fakeGenerator) Close() error { *g.closed = true; return nil }

// withFakeCUDA replaces the device registry for the test: "cpu" as registered, and a "cuda" device whose
// Describe fails with usable's error (nil: usable) and whose generator is gen.
func withFakeCUDA(t *testing.T, usable error, gen *fakeGenerator) {
	t.Helper()
	cuda := train.Device{Name: "cuda",
		Describe: func() (string, error) { return "fake GPU", usable },
		NewGenerator: func(w *model.Weights, lora *model.LoRAParams) (train.Generator, error) {
			return *gen, nil
		}}
	old := lookupDevice
	lookupDevice = func(name string) (train.Device, bool) {
		if name == "cuda" {
			return cuda, true
		}
		return train.LookupDevice(name)
	}
	t.Cleanup(func() { lookupDevice = old })
}

// wrapTrainBackends makes, for the test, every registered device's training backend wrap(the real one):
// the CPU backend made to look like the GPU machine to the pipeline.
func wrapTrainBackends(t *testing.T, wrap func(train.Backend) train.Backend) {
	t.Helper()
	old := lookupDevice
	lookupDevice = func(name string) (train.Device, bool) {
		d, ok := train.LookupDevice(name)
		inner := d.NewBackend
		d.NewBackend = func(w *model.Weights, p *train.Params) (train.Backend, error) {
			b, err := inner(w, p)
			return wrap(b), err
		}
		return d, ok
	}
	t.Cleanup(func() { lookupDevice = old })
}
