package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/pipeline"
	"github.com/urfave/cli/v2"
)

func scoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "score",
		Usage: "score saved model outputs on the four evaluation layers, without a model",
		UsageText: "t2m score --split data/eval.jsonl --predictions preds.jsonl --run-name r8\n" +
			"t2m score --split data/train.jsonl --gold\n" +
			"t2m score --split held_out.jsonl --predictions held.jsonl --held-out-collections museum_exhibits,fleet_vehicles",
		Description: "Reads a split file and a predictions file (one JSON object per line with a string field\n" +
			"\"prediction\", the raw model output, in the split's order), extracts the JSON of each output,\n" +
			"scores it (syntax, operators, fields, generalization, plus exact match, valid stages and\n" +
			"overall with refusals), prints the rates and writes <output-dir>/<run-name>/<split>_predictions.jsonl\n" +
			"and <split>_report.json, where <split> is the split file's base name. The report's provenance\n" +
			"records the command line, the sha256 of the split and predictions files, the settings, the\n" +
			"timings and the t2m version. A run folder that already holds this split's report is refused\n" +
			"unless --overwrite.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "split", Required: true, Usage: "split file (JSONL examples), e.g. data/eval.jsonl"},
			&cli.StringFlag{Name: "predictions", Usage: "JSONL file, one {\"prediction\": \"<raw model output>\"} per example, same order and count as --split"},
			&cli.BoolFlag{Name: "gold", Usage: "score the split's own gold outputs instead of --predictions (checks a data set: every non-negative example must pass)"},
			&cli.StringFlag{Name: "held-out-collections", Value: strings.Join(eval.DefaultHeldOutCollections, ","), Usage: "comma-separated collections counted as held-out schemas by the generalization layer"},
			&cli.StringFlag{Name: "run-name", Usage: "run folder under --output-dir (default: the predictions file's base name)"},
			&cli.StringFlag{Name: "output-dir", Value: "runs", Usage: "folder for run outputs"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace this split's report and predictions when the run folder already holds them"},
		},
		Action: runScore,
	}
}

func runScore(c *cli.Context) error {
	started := time.Now()
	splitPath, predPath := c.String("split"), c.String("predictions")
	gold := c.Bool("gold")
	if gold == (predPath != "") {
		return fmt.Errorf("score: pass exactly one of --predictions FILE and --gold")
	}
	runName := c.String("run-name")
	if runName == "" && gold {
		runName = "gold"
	} else if runName == "" {
		runName = fileStem(predPath)
	}
	if err := checkRunName(runName); err != nil {
		return fmt.Errorf("score: %w (pass --run-name)", err)
	}
	if runName == "" || runName == "." {
		return fmt.Errorf("score: empty run name: pass --run-name")
	}
	var heldOut []string
	for _, s := range strings.Split(c.String("held-out-collections"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			heldOut = append(heldOut, s)
		}
	}
	examples, err := data.ReadExamples(splitPath)
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	if len(examples) == 0 {
		return fmt.Errorf("score: %s has no examples: nothing to score (is it the right file?)", splitPath)
	}
	var preds []string
	if gold {
		predPath = "(gold outputs of " + splitPath + ")"
		for _, ex := range examples {
			preds = append(preds, string(ex.Output))
		}
	} else if preds, err = eval.ReadPredictions(predPath); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	if len(preds) != len(examples) {
		return fmt.Errorf("score: %s has %d predictions but %s has %d examples: write one prediction per example, in the split's order",
			predPath, len(preds), splitPath, len(examples))
	}
	prov, err := scoreProvenance(splitPath, c.String("predictions"), heldOut, gold)
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	scoreStart := time.Now()
	results, rep, err := eval.Score(examples, preds, heldOut)
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	prov.Timings.ScoringSeconds = time.Since(scoreStart).Seconds()
	split := fileStem(splitPath)
	rep.RunName, rep.Split, rep.SplitFile, rep.PredictionsFile = runName, split, splitPath, predPath
	dir := filepath.Join(c.String("output-dir"), runName)
	lock, err := pipeline.LockRun(dir, "t2m score")
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	defer lock.Release()
	if !c.Bool("overwrite") {
		for _, f := range []string{split + "_report.json", split + "_predictions.jsonl"} {
			// A folder in the way is not a report: writing says so (atomicfile).
			if st, err := os.Stat(filepath.Join(dir, f)); err == nil && !st.IsDir() {
				return fmt.Errorf("score: run folder %s already holds %s: pass --overwrite to replace it, or choose another --run-name", dir, f)
			}
		}
	}
	prov.Timings.WallSeconds = time.Since(started).Seconds()
	rep.Provenance = prov
	if err := eval.WriteReports(dir, split, results, rep); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s / %s\n\n", runName, split)
	fmt.Fprint(w, eval.FormatReport(rep))
	fmt.Fprintf(w, "wrote %s and %s\n",
		filepath.Join(dir, split+"_predictions.jsonl"), filepath.Join(dir, split+"_report.json"))
	if gold {
		return checkGold(splitPath, results, filepath.Join(dir, split+"_predictions.jsonl"))
	}
	return nil
}

// scoreProvenance is a score report's provenance: the command line, the t2m version, the split file and
// the predictions file (none for --gold) with their sha256, and the settings.
func scoreProvenance(splitPath, predPath string, heldOut []string, gold bool) (*eval.Provenance, error) {
	data, err := eval.HashFile(splitPath)
	if err != nil {
		return nil, err
	}
	p := &eval.Provenance{Command: commandLine(), T2MVersion: version(), CreatedAt: time.Now().Format(time.RFC3339),
		Data: []eval.FileRef{data}, Settings: eval.Settings{HeldOutCollections: heldOut, Gold: gold}}
	if !gold {
		pred, err := eval.HashFile(predPath)
		if err != nil {
			return nil, err
		}
		p.Predictions = &pred
	}
	return p, nil
}

// checkGold is --gold's verdict: every non-negative example's own gold output must pass the three
// layers; otherwise an error names the first failing lines (the report, already written, has the rest).
func checkGold(splitPath string, results []eval.Result, predFile string) error {
	var bad []string
	n := 0
	for _, r := range results {
		if r.IsNegative || r.PassedAll {
			continue
		}
		n++
		if len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("%s:%d", splitPath, r.Index+1))
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("score --gold: %d non-negative example(s) of %s fail their own gold output (first: %s): fix those lines; each example's verdicts are in %s",
		n, splitPath, strings.Join(bad, ", "), predFile)
}

// fileStem is a file's base name without its extension.
func fileStem(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}
