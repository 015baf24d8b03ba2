package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// AskOptions configure an Asker (t2m ask).
type AskOptions struct {
	ModelOptions
	// Adapter is a PEFT adapter folder applied unmerged ("" : the base model).
	Adapter string
	// MaxLen cuts longer prompts to their first MaxLen tokens, as Evaluate does; positive.
	MaxLen int
	// MaxNewTokens bounds the answer; positive.
	MaxNewTokens int
	// Sampling: Temperature 0 (the zero value) decodes greedily, as Evaluate does.
	Sampling model.Sampling
	// HeldOutCollections are the collections the generalization layer counts as held-out schemas.
	HeldOutCollections []string
}

// Asker holds a loaded model (and adapter) on its device, to answer requests one after another.
type Asker struct {
	opts    AskOptions
	m       *Model
	gen     train.Generator
	heldOut map[string]bool
}

// Answer is the model's answer to one request and its verdicts.
type Answer struct {
	// Result holds the raw output, the extracted query and the syntax, operators and fields verdicts, as a
	// line of <split>_predictions.jsonl (Expected is the gold output when the request came from a split).
	Result eval.Result
	// Pretty is the extracted query indented, or the extracted text as it is when it is not valid JSON.
	Pretty string
	// PromptTokens, NewTokens and Elapsed describe the generation; Cut is set when the prompt was cut to
	// MaxLen tokens.
	PromptTokens, NewTokens int
	Cut                     bool
	Elapsed                 time.Duration
}

// NewAsker checks the options, loads the model on its device (ResolveDevice for "ask") and the adapter, and
// makes the generator. Close frees it.
func NewAsker(opts AskOptions) (*Asker, error) {
	if opts.MaxNewTokens <= 0 || opts.MaxLen <= 0 {
		return nil, fmt.Errorf("ask: --max-new-tokens %d and --max-len %d must be positive", opts.MaxNewTokens, opts.MaxLen)
	}
	if opts.Sampling == (model.Sampling{}) {
		opts.Sampling.TopP = 1 // the zero value: greedy
	}
	if err := opts.Sampling.Validate(); err != nil {
		return nil, fmt.Errorf("ask: %w", err)
	}
	m, err := LoadModel(opts.ModelOptions, "ask")
	if err != nil {
		return nil, fmt.Errorf("ask: %w", err)
	}
	var lp *model.LoRAParams
	if opts.Adapter != "" {
		if lp, err = model.LoadAdapter(opts.Adapter, m.Weights.Config); err != nil {
			return nil, fmt.Errorf("ask: %w", err)
		}
	}
	dev, ok := lookupDevice(m.Device)
	if !ok || dev.NewGenerator == nil {
		return nil, fmt.Errorf("ask: no %s generator in this binary", m.Device)
	}
	gen, err := dev.NewGenerator(m.Weights, lp)
	if err != nil {
		return nil, fmt.Errorf("ask: %w", err)
	}
	a := &Asker{opts: opts, m: m, gen: gen, heldOut: map[string]bool{}}
	for _, c := range opts.HeldOutCollections {
		a.heldOut[c] = true
	}
	return a, nil
}

// Describe is one line about the loaded model: name, quantization, device (and the GPU's description).
func (a *Asker) Describe() string {
	s := fmt.Sprintf("model %s (%s) on %s", a.m.Name, a.m.Quant, a.m.Device)
	if a.opts.Adapter != "" {
		s += ", adapter " + a.opts.Adapter
	}
	if d := a.gen.Describe(); d != "" {
		s += ": " + d
	}
	if a.opts.Sampling.Greedy() {
		return s + ", greedy"
	}
	return s + fmt.Sprintf(", sampling at temperature %g, top-p %g, seed %d", a.opts.Sampling.Temperature, a.opts.Sampling.TopP, a.opts.Sampling.Seed)
}

// Ask renders ex's ChatML prompt (schema, allowed operators, intent), generates the answer and scores it
// on the evaluation layers against ex's schema and operators. ex.Output, when set, is the gold query the
// exact-match column compares with.
func (a *Asker) Ask(ex data.Example) (*Answer, error) {
	if strings.TrimSpace(ex.Intent) == "" {
		return nil, fmt.Errorf("ask: empty intent")
	}
	ids := a.m.Tok.Encode(data.Prompt(ex))
	ans := &Answer{PromptTokens: len(ids)}
	if len(ids) > a.opts.MaxLen {
		ids, ans.Cut = ids[:a.opts.MaxLen], true
	}
	prompt := make([]int32, len(ids))
	for i, id := range ids {
		prompt[i] = int32(id)
	}
	start := time.Now()
	s := a.opts.Sampling
	outs, err := a.gen.Generate([][]int32{prompt}, model.GenerateOptions{MaxNewTokens: a.opts.MaxNewTokens,
		StopIDs: stopIDs(a.m.Tok), Sampling: &s})
	if err != nil {
		return nil, fmt.Errorf("ask: %w", err)
	}
	ans.Elapsed = time.Since(start)
	newIDs := make([]int, len(outs[0]))
	for i, id := range outs[0] {
		newIDs[i] = int(id)
	}
	ans.NewTokens = len(newIDs)
	raw := strings.TrimSpace(a.m.Tok.DecodeSkipSpecial(newIDs))
	ans.Result = eval.ScoreExample(ex, raw, a.heldOut)
	ans.Pretty = ans.Result.Prediction
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(ans.Result.Prediction), "", "  ") == nil {
		ans.Pretty = buf.String()
	}
	return ans, nil
}

// Close frees the generator.
func (a *Asker) Close() error { return a.gen.Close() }

// ReadSchema reads a collection schema in the data format's "schema" shape ({"collection", "domain",
// "fields": [{"name", "type", "role", "description", "enum_values"?}]}), strictly: unknown keys, a
// missing collection, no fields or a field without a name are errors naming the file.
func ReadSchema(path string) (data.Schema, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return data.Schema{}, fmt.Errorf("--schema: %w", err)
	}
	var s data.Schema
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return data.Schema{}, fmt.Errorf("--schema %s: not a schema object {\"collection\", \"domain\", \"fields\": [...]}: %w", path, err)
	}
	if dec.More() {
		return data.Schema{}, fmt.Errorf("--schema %s: more than one JSON value", path)
	}
	switch {
	case s.Collection == "":
		return data.Schema{}, fmt.Errorf("--schema %s: \"collection\" is missing", path)
	case len(s.Fields) == 0:
		return data.Schema{}, fmt.Errorf("--schema %s: \"fields\" is empty", path)
	}
	for i, f := range s.Fields {
		if f.Name == "" {
			return data.Schema{}, fmt.Errorf("--schema %s: fields[%d] has no \"name\"", path, i)
		}
	}
	return s, nil
}

// AllOperators are the stage and expression operators of the data set (data.StageOperators and
// data.ExpressionOperators): t2m ask's default when a schema comes without an example.
func AllOperators() data.AllowedOps {
	return data.AllowedOps{StageOperators: append([]string(nil), data.StageOperators...),
		ExpressionOperators: append([]string(nil), data.ExpressionOperators...)}
}
