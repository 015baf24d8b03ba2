package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ComparisonRow is one report in the comparison table.
type ComparisonRow struct {
	Run    string
	Split  string
	Report *Report
	// HasExtras is false for reports without t2m's extra columns (the original's).
	HasExtras bool
	// Training is the run's training record (training_config.json, of the run folder or beside the
	// adapter the report was made with); nil when there is none.
	Training *TrainingConfig
}

// LoadComparison reads every <outputDir>/<run>/<split>_report.json, runs and
// files in name order, with each run's training record (ComparisonRow.Training).
// Files that cannot be read as a report or a training record are returned as
// warnings (naming the file) and skipped, as the original does, so one broken
// run does not hide the others.
func LoadComparison(outputDir string) (rows []ComparisonRow, warnings []string, err error) {
	entries, err := os.ReadDir(outputDir)
	if err != nil {
		return nil, nil, fmt.Errorf("compare: cannot list runs folder: %w (score or evaluate a run first, or pass --output-dir)", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(outputDir, e.Name(), "*_report.json"))
		if err != nil {
			return nil, nil, fmt.Errorf("compare: %w", err)
		}
		sort.Strings(files)
		first := len(rows)
		for _, f := range files {
			rep, err := ReadReport(f)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("skipped %s: %v", f, err))
				continue
			}
			var keys map[string]json.RawMessage
			b, _ := os.ReadFile(f) // ReadReport just read it
			_ = json.Unmarshal(b, &keys)
			_, extras := keys["exact_match_rate"]
			rows = append(rows, ComparisonRow{
				Run:       e.Name(),
				Split:     strings.TrimSuffix(filepath.Base(f), "_report.json"),
				Report:    rep,
				HasExtras: extras,
			})
		}
		var reps []*Report
		for _, r := range rows[first:] {
			reps = append(reps, r.Report)
		}
		tc, err := trainingFor(filepath.Join(outputDir, e.Name()), reps)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("run %s: no training settings shown: %v", e.Name(), err))
		}
		for i := first; i < len(rows); i++ {
			rows[i].Training = tc
		}
	}
	return rows, warnings, nil
}

// ComparisonTable renders rows as the markdown tables of `t2m compare`: the
// original's columns (Run | Split | N | Syntax | Operators | Fields | Overall,
// rates with one decimal like Python's "{:.1%}") followed by t2m's extra columns
// ("–" where a report lacks them); then one row per run with its training
// settings beside its eval and held_out overall rates and an adapter's gain over
// the baseline run of the same model (runsTable); then the eval-vs-held_out gaps.
// Without rows it says "No results found.".
func ComparisonTable(rows []ComparisonRow) string {
	if len(rows) == 0 {
		return "No results found."
	}
	lines := []string{
		"# Training Comparison Results",
		"",
		"| Run | Split | N | Syntax | Operators | Fields | Overall | Exact match | Valid stages | Overall w/ refusals | Generalization |",
		"|-----|-------|---|--------|-----------|--------|---------|-------------|--------------|---------------------|----------------|",
	}
	for _, r := range rows {
		p := r.Report
		exact, stages, refusals := "–", "–", "–"
		if r.HasExtras {
			exact, stages, refusals = pct(p.ExactMatchRate), pct(p.ValidStagesRate), pct(p.OverallWithRefusalsRate)
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |",
			mdCell(r.Run), mdCell(r.Split), p.Total, pct(p.SyntaxPassRate), pct(p.OperatorPassRate),
			pct(p.FieldPassRate), pct(p.OverallPassRate), exact, stages, refusals, genCell(p.Generalization)))
	}
	lines = append(lines, runsTable(rows)...)
	if gen := crossSplitGeneralization(rows); len(gen) > 0 {
		lines = append(lines, "", "## Generalization: eval (train schemas) vs held_out (held-out schemas)", "",
			"| Run | Syntax gap | Operators gap | Fields gap | Overfitting (gap beyond ±5 pts) |",
			"|-----|------------|---------------|------------|---------------------------------|")
		lines = append(lines, gen...)
	}
	return strings.Join(lines, "\n")
}

// mdCell makes text safe inside a markdown table cell: '|' is escaped and line breaks become spaces, so a
// run folder named "a|b" is one cell, not two.
func mdCell(s string) string {
	return strings.NewReplacer("\\", "\\\\", "|", "\\|", "\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// crossSplitGeneralization compares, for every run that has both an "eval" and a
// "held_out" report, the per-layer pass rates of the two splits (train-schema
// versus held-out-schema examples): the original's layer-4 comparison, made
// across the two report files of one run.
func crossSplitGeneralization(rows []ComparisonRow) []string {
	type pair struct{ eval, held *Report }
	runs := map[string]*pair{}
	var order []string
	for _, r := range rows {
		p := runs[r.Run]
		if p == nil {
			p = &pair{}
			runs[r.Run] = p
			order = append(order, r.Run)
		}
		switch r.Split {
		case "eval":
			p.eval = r.Report
		case "held_out":
			p.held = r.Report
		}
	}
	var lines []string
	for _, name := range order {
		p := runs[name]
		if p.eval == nil || p.held == nil || p.eval.Total == 0 || p.held.Total == 0 {
			continue
		}
		gaps := []float64{
			p.eval.SyntaxPassRate - p.held.SyntaxPassRate,
			p.eval.OperatorPassRate - p.held.OperatorPassRate,
			p.eval.FieldPassRate - p.held.FieldPassRate,
		}
		flag := "no"
		for _, g := range gaps {
			if g > OverfitGap || g < -OverfitGap {
				flag = "yes"
			}
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s | %s |", mdCell(name), pts(gaps[0]), pts(gaps[1]), pts(gaps[2]), flag))
	}
	return lines
}

// pts formats a rate difference in percentage points with its sign.
func pts(x float64) string { return fmt.Sprintf("%+.1f pts", x*100) }

// pct formats a fraction like Python's "{:.1%}".
func pct(x float64) string { return fmt.Sprintf("%.1f%%", x*100) }

// genCell summarizes layer 4 for the table.
func genCell(g *Generalization) string {
	switch {
	case g == nil:
		return "–"
	case g.Gaps == nil:
		return "held-out only"
	case g.Flagged:
		return "overfitting (gap > 5 pts)"
	}
	return "ok"
}

// FormatReport renders one report as the table printed by `t2m score`.
func FormatReport(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %-20s | %6s | %6s |\n", "layer", "all", "non-neg")
	fmt.Fprintf(&b, "|%s|%s|%s|\n", strings.Repeat("-", 22), strings.Repeat("-", 8), strings.Repeat("-", 8))
	row := func(name string, a, n float64) {
		fmt.Fprintf(&b, "| %-20s | %6s | %6s |\n", name, pct(a), pct(n))
	}
	nn := rep.NonNegative
	row("syntax", rep.SyntaxPassRate, nn.SyntaxPassRate)
	row("operators", rep.OperatorPassRate, nn.OperatorPassRate)
	row("fields", rep.FieldPassRate, nn.FieldPassRate)
	row("overall", rep.OverallPassRate, nn.OverallPassRate)
	row("exact match", rep.ExactMatchRate, nn.ExactMatchRate)
	row("valid stages", rep.ValidStagesRate, nn.ValidStagesRate)
	row("overall w/ refusals", rep.OverallWithRefusalsRate, nn.OverallWithRefusalsRate)
	fmt.Fprintf(&b, "examples: %d (%d negative)\n", rep.Total, rep.Negatives)
	g := rep.Generalization
	switch {
	case g == nil:
		fmt.Fprintf(&b, "generalization: no held-out-schema examples in this split (held-out collections: %s)\n",
			strings.Join(rep.HeldOutCollections, ", "))
	case g.Gaps == nil:
		fmt.Fprintf(&b, "generalization: %d held-out-schema examples: syntax %s, operators %s, fields %s; %s\n",
			g.HeldOut.Total, pct(g.HeldOut.SyntaxPassRate), pct(g.HeldOut.OperatorPassRate), pct(g.HeldOut.FieldPassRate), g.Note)
	default:
		verdict := "no overfitting flagged"
		if g.Flagged {
			verdict = "FLAGGED: a gap exceeds 5 points"
		}
		fmt.Fprintf(&b, "generalization (train %d vs held-out %d schemas): syntax %s vs %s, operators %s vs %s, fields %s vs %s; %s\n",
			g.Train.Total, g.HeldOut.Total,
			pct(g.Train.SyntaxPassRate), pct(g.HeldOut.SyntaxPassRate),
			pct(g.Train.OperatorPassRate), pct(g.HeldOut.OperatorPassRate),
			pct(g.Train.FieldPassRate), pct(g.HeldOut.FieldPassRate), verdict)
	}
	return b.String()
}
