package eval

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
)

func exampleFor(collection, gold string, negative bool) data.Example {
	ex := fuzzExample()
	ex.Schema.Collection = collection
	ex.Output = json.RawMessage(gold)
	ex.IsNegative = negative
	return ex
}

func TestScoreExampleExtras(t *testing.T) {
	gold := `{"type": "aggregate", "pipeline": [{"$group": {"_id": "$dept", "n": {"$sum": 1}}}]}`
	pos := exampleFor("staff", gold, false)
	neg := exampleFor("staff", `{"error": "no field bonus"}`, true)
	cases := []struct {
		name                           string
		ex                             data.Example
		raw                            string
		all, exact, stages, ref, withR bool
	}{
		{"gold in prose, keys reordered", pos, "Answer: " + `{"pipeline": [{"$group": {"n": {"$sum": 1.0}, "_id": "$dept"}}], "type": "aggregate"}` + " ok", true, true, true, false, true},
		{"passes layers, not exact", pos, `{"type": "find", "filter": {"dept": "x"}}`, true, false, true, false, true},
		{"fake stage passes layers when allowed", exampleForOps(pos, "$fakeStage"), `{"type": "aggregate", "pipeline": [{"$fakeStage": {}}]}`, true, false, false, false, true},
		{"refusal on a negative", neg, `{"error": "bonus is not a field"}`, false, false, false, true, true},
		{"query on a negative", neg, `{"type": "find", "filter": {"dept": "x"}}`, true, false, true, false, false},
		{"refusal on a positive", pos, `{"error": "cannot"}`, false, false, false, true, false},
		{"error with type is no refusal", neg, `{"type": "x", "error": "e"}`, false, false, false, false, false},
		{"garbage", pos, "I don't know", false, false, false, false, false},
	}
	for _, c := range cases {
		r := ScoreExample(c.ex, c.raw, nil)
		got := [5]bool{r.PassedAll, r.ExactMatch, r.ValidStages, r.Refusal, r.PassedWithRefusals}
		want := [5]bool{c.all, c.exact, c.stages, c.ref, c.withR}
		if got != want {
			t.Errorf("%s: [all exact stages refusal with-refusals] = %v, want %v (%+v)", c.name, got, want, r)
		}
	}
}

func exampleForOps(ex data.Example, extra string) data.Example {
	ex.AllowedOps.StageOperators = append(append([]string{}, ex.AllowedOps.StageOperators...), extra)
	return ex
}

func TestScoreRatesAndGeneralization(t *testing.T) {
	good := `{"type": "find", "filter": {"dept": "x"}}`
	badField := `{"type": "find", "filter": {"ghost": "x"}}`
	var exs []data.Example
	var raw []string
	// 10 train-schema examples all pass; 10 held-out-schema: 9 pass, 1 hallucinates
	// (fields gap 10 points: flagged); plus one negative answered with a refusal.
	for i := 0; i < 10; i++ {
		exs, raw = append(exs, exampleFor("staff", good, false)), append(raw, good)
		out := good
		if i == 0 {
			out = badField
		}
		exs, raw = append(exs, exampleFor("museum_exhibits", good, false)), append(raw, out)
	}
	exs, raw = append(exs, exampleFor("staff", `{"error": "x"}`, true)), append(raw, `{"error": "y"}`)

	_, rep, err := Score(exs, raw, DefaultHeldOutCollections)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 21 || rep.Negatives != 1 || rep.NonNegative.Total != 20 {
		t.Fatalf("totals %d/%d/%d, want 21 examples, 1 negative, 20 non-negative", rep.Total, rep.Negatives, rep.NonNegative.Total)
	}
	if rep.SyntaxPassed != 20 || rep.FieldsPassed != 19 || rep.OverallPassed != 19 || rep.OverallWithRefusals != 20 {
		t.Errorf("counts %+v, want syntax 20, fields 19, overall 19, with refusals 20", rep.Rates)
	}
	if math.Abs(rep.OverallPassRate-19.0/21) > 1e-12 || rep.NonNegative.OverallPassRate != 0.95 {
		t.Errorf("overall rate %v (non-negative %v), want 19/21 and 0.95", rep.OverallPassRate, rep.NonNegative.OverallPassRate)
	}
	g := rep.Generalization
	if g == nil || g.Train.Total != 11 || g.HeldOut.Total != 10 {
		t.Fatalf("generalization %+v, want 11 train-schema and 10 held-out examples", g)
	}
	// The negative fails syntax (as in the original), so train-schema syntax is
	// 10/11 against 10/10: a gap of -9.1 points, flagged like the original (|gap|).
	if math.Abs(g.Gaps["syntax"]-(10.0/11-1)) > 1e-12 || math.Abs(g.Gaps["fields"]-(10.0/11-0.9)) > 1e-12 || !g.Flagged {
		t.Errorf("gaps %v flagged %v, want syntax 10/11-1, fields 10/11-0.9, flagged", g.Gaps, g.Flagged)
	}
	// Without the negative: fields gap 1.0-0.9 = 10 points, flagged; syntax equal.
	_, rep, _ = Score(exs[:20], raw[:20], DefaultHeldOutCollections)
	if g := rep.Generalization; !g.Flagged || g.Gaps["syntax"] != 0 || math.Abs(g.Gaps["fields"]-0.1) > 1e-12 {
		t.Errorf("gaps %v flagged %v, want fields gap 0.1 flagged", g.Gaps, g.Flagged)
	}
	// A 4-point gap (25 vs 24 of 25) is not flagged.
	exs2, raw2 := []data.Example{}, []string{}
	for i := 0; i < 25; i++ {
		exs2, raw2 = append(exs2, exampleFor("staff", good, false)), append(raw2, good)
		out := good
		if i == 0 {
			out = badField
		}
		exs2, raw2 = append(exs2, exampleFor("fleet_vehicles", good, false)), append(raw2, out)
	}
	_, rep, _ = Score(exs2, raw2, DefaultHeldOutCollections)
	if g := rep.Generalization; g.Flagged || math.Abs(g.Gaps["fields"]-0.04) > 1e-12 {
		t.Errorf("gaps %v flagged %v, want a 4-point fields gap, not flagged", g.Gaps, g.Flagged)
	}
	if _, rep, _ = Score(exs, raw, nil); rep.Generalization != nil {
		t.Errorf("no held-out collections: generalization %+v, want none", rep.Generalization)
	}
	if _, _, err := Score(exs, raw[:3], nil); err == nil || !strings.Contains(err.Error(), "21 examples but 3 predictions") {
		t.Errorf("count mismatch: err %v, want one naming both counts", err)
	}
}

func TestReadPredictions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("ok.jsonl", `{"prediction": "{\"a\": 1}", "collection": "x"}`+"\n"+`{"prediction": ""}`)
	got, err := ReadPredictions(p)
	if err != nil || len(got) != 2 || got[0] != `{"a": 1}` || got[1] != "" {
		t.Fatalf("ReadPredictions = %q, %v", got, err)
	}
	bad := map[string]string{
		"blank line":   `{"prediction": "a"}` + "\n\n" + `{"prediction": "b"}`,
		"not json":     `{"prediction": "a"}` + "\n" + `prediction: b`,
		"no field":     `{"prediction": "a"}` + "\n" + `{"output": "b"}`,
		"not a string": `{"prediction": "a"}` + "\n" + `{"prediction": {"type": "find"}}`,
	}
	for name, content := range bad {
		_, err := ReadPredictions(write("bad.jsonl", content))
		if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2:") {
			t.Errorf("%s: err %v, want an error naming bad.jsonl:2", name, err)
		}
	}
	if _, err := ReadPredictions(filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestWriteReportsAndCompare(t *testing.T) {
	out := t.TempDir()
	exs := []data.Example{exampleFor("staff", `{"type": "find", "filter": {}}`, false)}
	results, rep, err := Score(exs, []string{`x {"type": "find", "filter": {}} y`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep.RunName, rep.Split = "r8", "eval"
	if err := WriteReports(filepath.Join(out, "r8"), "eval", results, rep); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "r8"))
	if len(entries) != 2 {
		t.Fatalf("run folder holds %d entries, want the two reports and no temporary file", len(entries))
	}
	line, _ := os.ReadFile(filepath.Join(out, "r8", "eval_predictions.jsonl"))
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil || rec["prediction"] != `{"type": "find", "filter": {}}` || rec["passed_all"] != true {
		t.Errorf("predictions line %s (%v)", line, err)
	}
	// A report of the original program (no extra columns) and a broken file.
	os.MkdirAll(filepath.Join(out, "seed"), 0o755)
	os.WriteFile(filepath.Join(out, "seed", "held_out_report.json"), []byte(`{"results": [], "total": 4, "syntax_pass_rate": 0.5, "operator_pass_rate": 0.25, "field_pass_rate": 0.125, "overall_pass_rate": 0.0, "generalization": null}`), 0o644)
	os.WriteFile(filepath.Join(out, "seed", "eval_report.json"), []byte(`{not json`), 0o644)
	rows, warnings, err := LoadComparison(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || len(warnings) != 1 || !strings.Contains(warnings[0], "eval_report.json") {
		t.Fatalf("rows %d, warnings %q: want 2 rows and a warning naming the broken file", len(rows), warnings)
	}
	table := ComparisonTable(rows)
	wantLines := []string{
		"| r8 | eval | 1 | 100.0% | 100.0% | 100.0% | 100.0% | 100.0% | 100.0% | 100.0% | – |",
		"| seed | held_out | 4 | 50.0% | 25.0% | 12.5% | 0.0% | – | – | – | – |",
	}
	for _, w := range wantLines {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
	if strings.Contains(table, "## Generalization") {
		t.Errorf("no run has both eval and held_out, yet the table has a generalization section:\n%s", table)
	}
	rows = append(rows, ComparisonRow{Run: "r8", Split: "held_out", Report: &Report{Rates: Rates{Total: 2, SyntaxPassRate: 1, OperatorPassRate: 0.96, FieldPassRate: 0.5}}})
	if table = ComparisonTable(rows); !strings.Contains(table, "| r8 | +0.0 pts | +4.0 pts | +50.0 pts | yes |") {
		t.Errorf("table lacks the eval-vs-held_out generalization row of r8:\n%s", table)
	}
	if ComparisonTable(nil) != "No results found." {
		t.Error("empty table")
	}
	if _, _, err := LoadComparison(filepath.Join(out, "nope")); err == nil {
		t.Error("missing runs folder: no error")
	}
}

func TestWriteFileAtomicKeepsOldOnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(p, []byte("old"), 0o644)
	err := WriteFileAtomic(p, func(w *bufio.Writer) error {
		w.WriteString("half")
		return os.ErrClosed
	})
	if err == nil {
		t.Fatal("no error")
	}
	b, _ := os.ReadFile(p)
	entries, _ := os.ReadDir(filepath.Dir(p))
	if string(b) != "old" || len(entries) != 1 {
		t.Errorf("after a failed write: content %q, %d entries; want the old file alone", b, len(entries))
	}
}
