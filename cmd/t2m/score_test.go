package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scoreSplit is a three-example split: two queries and one negative.
const scoreSplit = `{"schema": {"collection": "staff", "domain": "hr", "fields": [{"name": "dept", "type": "string", "role": "category", "description": ""}, {"name": "salary", "type": "double", "role": "measure", "description": ""}]}, "allowed_ops": {"stage_operators": ["$group"], "expression_operators": ["$sum"]}, "intent": "total salary per dept", "output": {"type": "aggregate", "pipeline": [{"$group": {"_id": "$dept", "total": {"$sum": "$salary"}}}]}, "is_negative": false}
{"schema": {"collection": "museum_exhibits", "domain": "culture", "fields": [{"name": "title", "type": "string", "role": "text", "description": ""}]}, "allowed_ops": {"stage_operators": [], "expression_operators": []}, "intent": "exhibits titled Mona", "output": {"type": "find", "filter": {"title": "Mona"}}, "is_negative": false}
{"schema": {"collection": "staff", "domain": "hr", "fields": [{"name": "dept", "type": "string", "role": "category", "description": ""}]}, "allowed_ops": {"stage_operators": [], "expression_operators": []}, "intent": "staff by bonus", "output": {"error": "no field bonus"}, "is_negative": true}
`

func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"t2m"}, args...))
	return out.String(), err
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func predLines(preds ...string) string {
	var b strings.Builder
	for _, p := range preds {
		line, _ := json.Marshal(map[string]string{"prediction": p})
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestScoreCommand(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	split := writeFile(t, filepath.Join(dir, "eval.jsonl"), scoreSplit)
	preds := writeFile(t, filepath.Join(dir, "preds.jsonl"), predLines(
		"```json\n{\"type\": \"aggregate\", \"pipeline\": [{\"$group\": {\"_id\": \"$dept\", \"total\": {\"$sum\": \"$salary\"}}}]}\n```",
		`{"type": "find", "filter": {"name": "Mona"}}`, // hallucinated field
		`{"error": "bonus is not a field"}`,
	))
	out, err := runApp(t, "score", "--split", split, "--predictions", preds, "--run-name", "r8", "--output-dir", runs)
	if err != nil {
		t.Fatalf("score: %v\n%s", err, out)
	}
	if !strings.Contains(out, "| overall              |  33.3% |  50.0% |") {
		t.Errorf("printed table lacks the overall row (1 of 3, 1 of 2 non-negative):\n%s", out)
	}
	entries, _ := os.ReadDir(filepath.Join(runs, "r8"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != ".lock,eval_predictions.jsonl,eval_report.json" {
		t.Fatalf("run folder holds %v, want exactly the lock file and the two reports (no temporary files)", names)
	}
	var rep struct {
		Total          int     `json:"total"`
		Overall        float64 `json:"overall_pass_rate"`
		WithRefusals   float64 `json:"overall_with_refusals_rate"`
		Split          string  `json:"split"`
		Generalization *struct {
			Flagged bool `json:"flagged"`
		} `json:"generalization"`
	}
	b, _ := os.ReadFile(filepath.Join(runs, "r8", "eval_report.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Total != 3 || rep.Split != "eval" || rep.Overall != 1.0/3 || rep.WithRefusals != 2.0/3 || rep.Generalization == nil || !rep.Generalization.Flagged {
		t.Errorf("report %s", b)
	}
	lines, _ := os.ReadFile(filepath.Join(runs, "r8", "eval_predictions.jsonl"))
	if n := strings.Count(string(lines), "\n"); n != 3 || !strings.Contains(string(lines), `"hallucinated":["name"]`) {
		t.Errorf("predictions file (%d lines):\n%s", n, lines)
	}

	// Default run name: the predictions file's base name.
	if _, err := runApp(t, "score", "--split", split, "--predictions", preds, "--output-dir", runs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(runs, "preds", "eval_report.json")); err != nil {
		t.Errorf("default run name: %v", err)
	}

	// compare reads both runs and writes comparison.md.
	out, err = runApp(t, "compare", "--output-dir", runs)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(runs, "comparison.md"))
	row := "| r8 | eval | 3 | 66.7% | 66.7% | 33.3% | 33.3% | 33.3% | 66.7% | 66.7% | overfitting (gap > 5 pts) |"
	if !strings.Contains(out, row) || !strings.Contains(string(md), row) || !strings.Contains(string(md), "| preds | eval |") {
		t.Errorf("compare output lacks %q:\n%s\ncomparison.md:\n%s", row, out, md)
	}
}

func TestScoreCommandBadInput(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	split := writeFile(t, filepath.Join(dir, "eval.jsonl"), scoreSplit)
	short := writeFile(t, filepath.Join(dir, "short.jsonl"), predLines("{}", "{}"))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"count mismatch", []string{"--predictions", short, "--run-name", "x"}, "has 2 predictions but"},
		{"run name with slash", []string{"--predictions", short, "--run-name", "a/b"}, "must not contain"},
		{"run name with dots", []string{"--predictions", short, "--run-name", ".."}, "must not contain"},
		{"run name with backslash", []string{"--predictions", short, "--run-name", `a\b`}, "must not contain"},
		{"malformed prediction line", []string{"--predictions", writeFile(t, filepath.Join(dir, "bad.jsonl"), "{}\n{\"prediction\": 3}\n{}\n"), "--run-name", "x"}, "bad.jsonl:1:"},
		{"missing split", []string{"--predictions", short, "--run-name", "x", "--split", filepath.Join(dir, "nope.jsonl")}, "nope.jsonl"},
	}
	for _, c := range cases {
		args := append([]string{"score", "--split", split, "--output-dir", runs}, c.args...)
		if _, err := runApp(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(runs); !os.IsNotExist(err) {
		t.Errorf("a failed score wrote %s (%v); want nothing written", runs, err)
	}
	if _, err := runApp(t, "score", "--split", split); err == nil {
		t.Error("missing --predictions: no error")
	}
	if _, err := runApp(t, "compare", "--output-dir", filepath.Join(dir, "none")); err == nil {
		t.Error("compare on a missing folder: no error")
	}
}

func TestScoreCommandGold(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	split := writeFile(t, filepath.Join(dir, "eval.jsonl"), scoreSplit)
	out, err := runApp(t, "score", "--split", split, "--gold", "--output-dir", runs)
	if err != nil {
		t.Fatalf("score --gold: %v\n%s", err, out)
	}
	// Both queries pass; the negative's {"error": ...} fails syntax as in the original.
	if !strings.Contains(out, "| overall              |  66.7% | 100.0% |") {
		t.Errorf("gold scoring should pass every non-negative example:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(runs, "gold", "eval_report.json")); err != nil {
		t.Errorf("default run name for --gold: %v", err)
	}
	preds := writeFile(t, filepath.Join(dir, "p.jsonl"), predLines("{}", "{}", "{}"))
	if _, err := runApp(t, "score", "--split", split, "--gold", "--predictions", preds, "--output-dir", runs); err == nil {
		t.Error("--gold with --predictions: no error")
	}
}
