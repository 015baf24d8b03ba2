package main

import (
	"bufio"
	"fmt"
	"path/filepath"

	"github.com/t2m/t2m/eval"
	"github.com/urfave/cli/v2"
)

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "print a markdown table of every run's reports, also written to <output-dir>/comparison.md",
		UsageText: "t2m compare\nt2m compare --output-dir runs",
		Description: "Reads every <output-dir>/*/*_report.json (written by t2m score, eval or baseline, or by the\n" +
			"original Python project) and prints Run | Split | N | Syntax | Operators | Fields | Overall and\n" +
			"t2m's extra columns (exact match, valid stages, overall with refusals, generalization); then per\n" +
			"run its training settings (r, alpha, epochs, lr, max-len, train examples, from its\n" +
			"training_config.json), its eval and held_out overall rates and, for an adapter, the gain over\n" +
			"the baseline run of the same model (— when there is none); the eval-vs-held_out gaps; and how\n" +
			"each report was made (command line, model, adapter, data sha256, settings, timings, version).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output-dir", Value: "runs", Usage: "folder holding one sub-folder per run"},
		},
		Action: func(c *cli.Context) error {
			dir := c.String("output-dir")
			rows, warnings, err := eval.LoadComparison(dir)
			if err != nil {
				return fmt.Errorf("compare: %w", err)
			}
			for _, w := range warnings {
				fmt.Fprintln(c.App.ErrWriter, "t2m compare: warning:", w)
			}
			table := eval.ComparisonTable(rows)
			if prov := eval.ProvenanceSection(rows); prov != "" {
				table += "\n\n" + prov + "\n\n_Written by " + eval.MarkdownCode(eval.ShellJoin(commandLine())) +
					" (t2m " + eval.MarkdownText(version()) + ")._"
			}
			fmt.Fprintln(c.App.Writer, table)
			out := filepath.Join(dir, "comparison.md")
			err = eval.WriteFileAtomic(out, func(w *bufio.Writer) error {
				_, err := w.WriteString(table + "\n")
				return err
			})
			if err != nil {
				return fmt.Errorf("compare: %w", err)
			}
			fmt.Fprintln(c.App.ErrWriter, "wrote", out)
			return nil
		},
	}
}
