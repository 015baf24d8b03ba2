package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/gpu"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
)

// generationBatch is how many prompts are decoded together (the original's batch_size=8).
const generationBatch = 8

// generationFlags are the flags baseline and eval add to modelFlags.
func generationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-new-tokens", Value: model.DefaultMaxNewTokens, Usage: "stop each generation after this many tokens"},
		&cli.StringFlag{Name: "held-out-collections", Value: strings.Join(eval.DefaultHeldOutCollections, ","), Usage: "collections counted as held-out schemas by the generalization layer"},
	}
}

func baselineCommand() *cli.Command {
	return &cli.Command{
		Name:      "baseline",
		Usage:     "evaluate the base model zero-shot on the eval and held-out splits",
		UsageText: "t2m baseline --model ~/models/Qwen2.5-Coder-7B-Instruct --data-dir data\nt2m baseline --model tiny --data-dir /tmp/d --limit 8 --max-new-tokens 32",
		Description: "Generates greedily (up to --max-new-tokens, stopping at <|im_end|> or <|endoftext|>) for every\n" +
			"example of eval.jsonl and held_out.jsonl with the base model, and scores the outputs like\n" +
			"`t2m score`: <output-dir>/<run>/{eval,held_out}_predictions.jsonl and _report.json\n" +
			"(run name default <model>_baseline).",
		Flags:  append(modelFlags(), generationFlags()...),
		Action: func(c *cli.Context) error { return runGenerate(c, "baseline") },
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "evaluate a fine-tuned adapter on the eval and held-out splits",
		UsageText: "t2m eval --model ~/models/Qwen2.5-Coder-7B-Instruct --adapter runs/r8/adapter --run-name r8",
		Description: "Like baseline, with the PEFT adapter of --adapter applied (not merged). The run name defaults\n" +
			"to the adapter's run folder (runs/<run>/adapter → <run>).",
		Flags:  append(modelFlags(), generationFlags()...),
		Action: func(c *cli.Context) error { return runGenerate(c, "eval") },
	}
}

// generator decodes greedily: model.Generator on the CPU, the GPU backend's gpu.Generator on cuda; both
// have model.Generator.Generate's semantics.
type generator interface {
	Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error)
}

// runGenerate is baseline (no adapter) and eval (--adapter required).
func runGenerate(c *cli.Context, cmd string) error {
	out := c.App.Writer
	runName := c.String("run-name")
	if err := checkRunName(runName); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	adapterDir := c.String("adapter")
	switch {
	case cmd == "eval" && adapterDir == "":
		return fmt.Errorf("eval: --adapter DIR is required (the adapter folder t2m train wrote, e.g. runs/<run>/adapter); use t2m baseline for the base model")
	case cmd == "baseline" && adapterDir != "":
		return fmt.Errorf("baseline: --adapter is for t2m eval; baseline evaluates the base model")
	}
	limit, maxLen, maxNew := c.Int("limit"), c.Int("max-len"), c.Int("max-new-tokens")
	if maxNew <= 0 || maxLen <= 0 {
		return fmt.Errorf("%s: --max-new-tokens %d and --max-len %d must be positive", cmd, maxNew, maxLen)
	}
	var heldOut []string
	for _, s := range strings.Split(c.String("held-out-collections"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			heldOut = append(heldOut, s)
		}
	}
	splits := []string{"eval", "held_out"}
	examples := map[string][]data.Example{}
	paths := map[string]string{}
	for _, s := range splits {
		exs, path, err := readSplit(c.String("data-dir"), s, limit)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		examples[s], paths[s] = exs, path
	}
	lm, err := loadForCommand(c, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var lp *model.LoRAParams
	if adapterDir != "" {
		if lp, err = model.LoadAdapter(adapterDir, lm.Weights.Config); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	if runName == "" {
		switch {
		case cmd == "baseline":
			runName = lm.Name + "_baseline"
		case filepath.Base(filepath.Clean(adapterDir)) == "adapter":
			runName = filepath.Base(filepath.Dir(filepath.Clean(adapterDir)))
		default:
			runName = fmt.Sprintf("%s_r%d", lm.Name, lp.Rank)
		}
		if err := checkRunName(runName); err != nil || runName == "." || runName == "" {
			return fmt.Errorf("%s: cannot derive a run name from --adapter %s: pass --run-name", cmd, adapterDir)
		}
	}
	var gen generator
	if lm.Device == "cuda" {
		b, err := gpu.Get() // resolveDevice checked that it is there and a GPU is usable
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		g, err := b.NewGenerator(lm.Weights, lp, gpu.GeneratorOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		defer g.Close()
		fmt.Fprintf(out, "generating on %s\n", g.Describe())
		gen = g
	} else if gen, err = model.NewGenerator(lm.Weights, lp); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var stops []int32
	for _, s := range []string{tokenizer.ImEnd, tokenizer.EndOfText} {
		if id, ok := lm.Tok.TokenID(s); ok {
			stops = append(stops, int32(id))
		}
	}
	dir := filepath.Join(c.String("output-dir"), runName)
	fmt.Fprintf(out, "%s %s: model %s (%s)%s on %s, greedy, up to %d new tokens\n", cmd, runName, lm.Name, lm.Quant,
		map[bool]string{true: ", adapter " + adapterDir, false: ""}[adapterDir != ""], lm.Device, maxNew)
	for _, split := range splits {
		exs := examples[split]
		preds, err := generateSplit(c, gen, lm.Tok, exs, split, maxLen, maxNew, stops)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", cmd, split, err)
		}
		results, rep, err := eval.Score(exs, preds, heldOut)
		if err != nil {
			return fmt.Errorf("%s: scoring %s: %w", cmd, split, err)
		}
		rep.RunName, rep.Split, rep.SplitFile, rep.PredictionsFile = runName, split, paths[split], "(generated by t2m "+cmd+")"
		if err := eval.WriteReports(dir, split, results, rep); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		fmt.Fprintf(out, "\n%s / %s\n\n%s", runName, split, eval.FormatReport(rep))
		fmt.Fprintf(out, "wrote %s and %s\n\n", filepath.Join(dir, split+"_predictions.jsonl"), filepath.Join(dir, split+"_report.json"))
	}
	return nil
}

// generateSplit decodes every example's prompt in batches, printing progress with an ETA, and returns the
// raw outputs: the new tokens decoded without special tokens and stripped, as the original did. Prompts
// longer than maxLen keep their first maxLen tokens (the original tokenized with truncation=True,
// max_length=512, on the right).
func generateSplit(c *cli.Context, gen generator, tok *tokenizer.Tokenizer, exs []data.Example, split string,
	maxLen, maxNew int, stops []int32) ([]string, error) {
	out := c.App.Writer
	prompts := make([][]int32, len(exs))
	cut := 0
	for i, ex := range exs {
		ids := tok.Encode(data.Prompt(ex))
		if len(ids) > maxLen {
			ids, cut = ids[:maxLen], cut+1
		}
		p := make([]int32, len(ids))
		for j, id := range ids {
			p[j] = int32(id)
		}
		prompts[i] = p
	}
	if cut > 0 {
		fmt.Fprintf(out, "warning: %d of %d %s prompts are longer than --max-len %d and were cut (as the original's truncation did)\n", cut, len(exs), split, maxLen)
	}
	preds := make([]string, 0, len(exs))
	start := time.Now()
	newTokens := 0
	for b := 0; b < len(prompts); b += generationBatch {
		batch := prompts[b:min(b+generationBatch, len(prompts))]
		outs, err := gen.Generate(batch, model.GenerateOptions{MaxNewTokens: maxNew, StopIDs: stops})
		if err != nil {
			return nil, fmt.Errorf("example %d..%d: %w", b, b+len(batch)-1, err)
		}
		for _, o := range outs {
			ids := make([]int, len(o))
			for j, id := range o {
				ids[j] = int(id)
			}
			newTokens += len(o)
			preds = append(preds, strings.TrimSpace(tok.DecodeSkipSpecial(ids)))
		}
		done := len(preds)
		el := time.Since(start)
		eta := time.Duration(float64(el) / float64(done) * float64(len(prompts)-done))
		fmt.Fprintf(out, "generating %s: %d/%d prompts  %.1f new tok/s  elapsed %s  ETA %s\n", split, done, len(prompts),
			float64(newTokens)/el.Seconds(), el.Round(time.Second), eta.Round(time.Second))
	}
	return preds, nil
}
