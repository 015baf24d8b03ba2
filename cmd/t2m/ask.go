package main

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/pipeline"
)

func askCommand() *cli.Command {
	return &cli.Command{
		Name:  "ask",
		Usage: "ask the model for one query: raw output, the extracted query and the evaluation layers' verdicts",
		UsageText: "t2m ask --model ~/models/Qwen2.5-Coder-7B-Instruct --adapter runs/r8/adapter --schema posts.json --intent 'Count posts per topic'\n" +
			"t2m ask --model tiny --split data/eval.jsonl --index 3\n" +
			"t2m ask --model tiny --schema posts.json < intents.txt      # one intent per line, the model stays loaded",
		Description: "The schema is a JSON file in the data format's \"schema\" shape ({\"collection\", \"domain\", \"fields\"})\n" +
			"or the schema of example --index of --split. Allowed operators: --stage-ops/--expr-ops, else the\n" +
			"example's, else every operator of the data set. The intent is --intent, else the example's, else\n" +
			"each line of stdin in turn. Greedy by default (as eval); --temperature > 0 samples (top-p, seed).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "qwen2.5-coder-7b", Usage: "model name from the registry (tiny) or a directory with config.json + safetensors"},
			&cli.StringFlag{Name: "adapter", Usage: "PEFT LoRA adapter directory to apply"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json (default: DIR/tokenizer.json for a model directory; for tiny $" + pipeline.TokenizerEnv + ", else --split's folder's tokenizer.json, else the built-in byte tokenizer)"},
			&cli.StringFlag{Name: "device", Value: "auto", Usage: "auto|cpu|cuda"},
			&cli.StringFlag{Name: "quantize", Value: "auto", Usage: "auto|none|nf4 (auto: nf4 for a model directory)"},
			&cli.StringFlag{Name: "schema", Usage: "collection schema JSON file"},
			&cli.StringFlag{Name: "split", Usage: "a split file (JSONL) to take example --index from"},
			&cli.IntFlag{Name: "index", Usage: "0-based example of --split"},
			&cli.StringFlag{Name: "stage-ops", Usage: "allowed stage operators, comma-separated (e.g. $match,$group)"},
			&cli.StringFlag{Name: "expr-ops", Usage: "allowed expression operators, comma-separated (e.g. $sum,$gt)"},
			&cli.StringFlag{Name: "intent", Usage: "the request in natural language (default: the example's, or one per line on stdin)"},
			&cli.IntFlag{Name: "max-len", Value: data.DefaultMaxLen, Usage: fmt.Sprintf("cut longer prompts to this many tokens (%d when not given and the tokenizer is the built-in byte one)", pipeline.ByteMaxLen)},
			&cli.IntFlag{Name: "max-new-tokens", Value: model.DefaultMaxNewTokens, Usage: "longest answer in tokens"},
			&cli.Float64Flag{Name: "temperature", Value: 0, Usage: "sampling temperature; 0 decodes greedily"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "nucleus sampling: keep the most likely tokens up to this probability mass, in (0, 1]"},
			&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "sampling seed: the same seed gives the same answer"},
			&cli.StringFlag{Name: "held-out-collections", Value: strings.Join(eval.DefaultHeldOutCollections, ","), Usage: "collections the generalization layer counts as held-out schemas"},
		},
		Action: runAsk,
	}
}

// askRequest builds the request's example (schema, allowed operators, the example's intent and gold
// output when it comes from a split) from the flags, before any model is loaded.
func askRequest(c *cli.Context) (data.Example, error) {
	var ex data.Example
	switch schema, split := c.String("schema"), c.String("split"); {
	case schema != "" && split != "":
		return ex, fmt.Errorf("give --schema FILE or --split FILE --index N, not both")
	case schema != "":
		s, err := pipeline.ReadSchema(schema)
		if err != nil {
			return ex, err
		}
		ex.Schema, ex.AllowedOps = s, pipeline.AllOperators()
	case split != "":
		exs, err := data.ReadExamples(split)
		if err != nil {
			return ex, err
		}
		i := c.Int("index")
		if i < 0 || i >= len(exs) {
			return ex, fmt.Errorf("--index %d: %s has examples 0..%d", i, split, len(exs)-1)
		}
		ex = exs[i]
	default:
		return ex, fmt.Errorf("give a schema: --schema FILE, or --split FILE --index N")
	}
	if c.IsSet("stage-ops") {
		ex.AllowedOps.StageOperators = splitList(c.String("stage-ops"))
	}
	if c.IsSet("expr-ops") {
		ex.AllowedOps.ExpressionOperators = splitList(c.String("expr-ops"))
	}
	for _, op := range append(append([]string(nil), ex.AllowedOps.StageOperators...), ex.AllowedOps.ExpressionOperators...) {
		if !strings.HasPrefix(op, "$") {
			return ex, fmt.Errorf("operator %q: operators start with $ (e.g. $match, $gt)", op)
		}
	}
	if intent := c.String("intent"); c.IsSet("intent") {
		if strings.TrimSpace(intent) == "" {
			return ex, fmt.Errorf("--intent is empty")
		}
		if intent != ex.Intent {
			ex.Output = nil // the example's gold answers another request
		}
		ex.Intent = intent
	}
	return ex, nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func runAsk(c *cli.Context) error {
	ex, err := askRequest(c)
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	mo := pipeline.ModelOptions{Model: c.String("model"), Device: c.String("device"), Quantize: c.String("quantize"),
		Tokenizer: c.String("tokenizer")}
	dataDir := "" // a built-in model takes --split's folder's tokenizer.json, as train's --data-dir's
	if split := c.String("split"); split != "" {
		dataDir = filepath.Dir(split)
	}
	tok := pipeline.FindTokenizer(mo, dataDir)
	if tok.From != "the model directory" {
		mo.Tokenizer = tok.Path
	}
	maxLen := c.Int("max-len")
	if tok.Bytes() && !c.IsSet("max-len") {
		maxLen = pipeline.ByteMaxLen // as train's: a byte-tokenized prompt is about 1,500 tokens
	}
	asker, err := pipeline.NewAsker(pipeline.AskOptions{
		ModelOptions: mo,
		Adapter:      c.String("adapter"), MaxLen: maxLen, MaxNewTokens: c.Int("max-new-tokens"),
		Sampling:           model.Sampling{Temperature: c.Float64("temperature"), TopP: c.Float64("top-p"), Seed: c.Uint64("seed")},
		HeldOutCollections: splitList(c.String("held-out-collections")),
	})
	if err != nil {
		return err
	}
	defer asker.Close()
	out := c.App.Writer
	fmt.Fprintf(out, "%s\n", asker.Describe())
	if ex.Intent != "" {
		return askOne(out, asker, ex)
	}
	fmt.Fprintf(c.App.ErrWriter, "collection %s: reading intents from stdin, one per line (end with Ctrl-D)\n", ex.Schema.Collection)
	sc := bufio.NewScanner(c.App.Reader)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ex.Intent = line
		if err := askOne(out, asker, ex); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ask: reading stdin: %w", err)
	}
	return nil
}

// askOne asks and prints the answer.
func askOne(out io.Writer, asker *pipeline.Asker, ex data.Example) error {
	ans, err := asker.Ask(ex)
	if err != nil {
		return err
	}
	printAnswer(out, ex, ans)
	return nil
}

// printAnswer prints the intent, the raw output, the extracted query and each layer's verdict.
func printAnswer(out io.Writer, ex data.Example, a *pipeline.Answer) {
	r := a.Result
	fmt.Fprintf(out, "\nintent: %s\n", ex.Intent)
	cut := ""
	if a.Cut {
		cut = " (prompt cut to --max-len)"
	}
	fmt.Fprintf(out, "generated %d tokens after a %d-token prompt in %s%s\n", a.NewTokens, a.PromptTokens, a.Elapsed.Round(1e6), cut)
	fmt.Fprintf(out, "raw output:\n%s\n", indent(r.RawOutput))
	if r.Prediction == "" {
		fmt.Fprintln(out, "query: (no JSON object in the output)")
	} else {
		fmt.Fprintf(out, "query:\n%s\n", indent(a.Pretty))
	}
	verdict := func(ok bool, detail string) string {
		if ok {
			return "pass" + detail
		}
		return "FAIL" + detail
	}
	list := func(label string, xs []string) string {
		if len(xs) == 0 {
			return ""
		}
		return fmt.Sprintf(" (%s %s)", label, strings.Join(xs, ", "))
	}
	syn := ""
	if len(r.Syntax.Errors) > 0 {
		syn = ": " + strings.Join(r.Syntax.Errors, "; ")
	}
	fmt.Fprintf(out, "syntax          %s\n", verdict(r.Syntax.Passed, syn))
	if r.Syntax.Passed {
		ops := list("used", r.Operators.Used) + list("not allowed:", r.Operators.Violations) + list("never allowed:", r.Operators.Unsafe)
		fmt.Fprintf(out, "operators       %s\n", verdict(r.Operators.Passed, ops))
		fields := list("referenced", r.Fields.Referenced) + list("not in the schema:", r.Fields.Hallucinated)
		fmt.Fprintf(out, "fields          %s\n", verdict(r.Fields.Passed, fields))
	} else {
		fmt.Fprintln(out, "operators       FAIL (not checked: syntax failed)")
		fmt.Fprintln(out, "fields          FAIL (not checked: syntax failed)")
	}
	schema := "a training schema (not in --held-out-collections)"
	if r.HeldOut {
		schema = "a held-out schema"
	}
	fmt.Fprintf(out, "generalization  %s is %s: this answer counts toward its rates\n", ex.Schema.Collection, schema)
	fmt.Fprintf(out, "overall         %s\n", verdict(r.PassedAll, ""))
	if len(ex.Output) > 0 {
		fmt.Fprintf(out, "gold            %s (exact match: %v)\n", strings.TrimSpace(string(ex.Output)), r.ExactMatch)
	}
}

// indent prefixes each line with two spaces.
func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
