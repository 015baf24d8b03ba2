package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// provReport is a report of n examples at overall rate overall, made by model (registered) with or
// without an adapter, on a split file of the given sha256.
func provReport(split, model string, adapter bool, n int, overall float64, sha string) *Report {
	p := &Provenance{Model: &ModelRef{Name: model, Registered: true}, Command: []string{"t2m", "eval", "--run-name", "x`y|z"},
		Data: []FileRef{{Path: "/d/" + split + ".jsonl", SHA256: sha}}}
	if adapter {
		p.Adapter = &AdapterRef{Path: "/nowhere/adapter", AdapterModelSHA256: "ab"}
	}
	return &Report{Split: split, SplitFile: "d/" + split + ".jsonl", Rates: Rates{Total: n, OverallPassRate: overall}, Provenance: p}
}

// The runs table: settings from the training record, the gain over the baseline of the same model, "—"
// without one, and no gain over a baseline that scored other examples.
func TestRunsTableGainAndSettings(t *testing.T) {
	tc := &TrainingConfig{Model: "tiny"}
	tc.Config.Rank, tc.Config.Alpha, tc.Config.Epochs, tc.Config.LR, tc.Config.MaxLen, tc.Config.TrainSeqs = 8, 16, 3, 2e-4, 512, 1500
	rows := []ComparisonRow{
		{Run: "a_base", Split: "eval", Report: provReport("eval", "tiny", false, 10, 0.4, "s1")},
		{Run: "a_base", Split: "held_out", Report: provReport("held_out", "tiny", false, 5, 0.2, "s2")},
		{Run: "a_r8", Split: "eval", Report: provReport("eval", "tiny", true, 10, 0.95, "s1"), Training: tc},
		{Run: "a_r8", Split: "held_out", Report: provReport("held_out", "tiny", true, 4, 0.9, "s2"), Training: tc},
		{Run: "other|model", Split: "eval", Report: provReport("eval", "big", true, 10, 0.5, "s1")},
		{Run: "old", Split: "eval", Report: &Report{Rates: Rates{Total: 10, OverallPassRate: 0.5}}},
	}
	table := ComparisonTable(rows)
	for _, want := range []string{
		"| a_base | tiny | — | — | — | — | — | — | 40.0% | 20.0% | (this run) | — | — |",
		"| a_r8 | tiny | 8 | 16 | 3 | 0.0002 | 512 | 1500 | 95.0% | 90.0% | a_base | +55.0 pts | — (other examples) |",
		"| other\\|model | big | — | — | — | — | — | — | 50.0% | — | — | — | — |",
		"| old | — | — | — | — | — | — | — | 50.0% | — | — | — | — |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	// Every row of the runs table has its header's 13 cells (escaped '|' included).
	for _, l := range strings.Split(table, "\n") {
		if strings.Contains(l, "| tiny |") || strings.Contains(l, "| big |") {
			if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|") - 1; n != 13 {
				t.Errorf("row %q has %d cells, want 13", l, n)
			}
		}
	}
	prov := ProvenanceSection(rows)
	for _, want := range []string{"### other\\|model", "- eval: ``t2m eval --run-name 'x`y|z'``", "model tiny (built-in)",
		"adapter `/nowhere/adapter` (adapter_model.safetensors sha256 ab)", "### old", "no provenance recorded"} {
		if !strings.Contains(prov, want) {
			t.Errorf("provenance section lacks %q:\n%s", want, prov)
		}
	}
}

// LoadComparison finds a run's training record in its folder, or beside the adapter its reports name.
func TestLoadComparisonReadsTrainingConfig(t *testing.T) {
	out := t.TempDir()
	train := filepath.Join(out, "r8")
	os.MkdirAll(filepath.Join(train, "adapter"), 0o755)
	os.WriteFile(filepath.Join(train, TrainingConfigFile), []byte(`{"model": "tiny", "config": {"lora_r": 8, "lora_alpha": 16, "epochs": 3, "learning_rate": 0.0002, "max_len": 512, "train_sequences": 12}}`), 0o644)
	rep := provReport("eval", "tiny", true, 1, 1, "s")
	rep.Provenance.Adapter.Path = filepath.Join(train, "adapter")
	if err := WriteReports(train, "eval", nil, rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteReports(filepath.Join(out, "r8-again"), "eval", nil, rep); err != nil {
		t.Fatal(err)
	}
	rows, warnings, err := LoadComparison(out)
	if err != nil || len(warnings) != 0 || len(rows) != 2 {
		t.Fatalf("rows %d, warnings %v, %v", len(rows), warnings, err)
	}
	for _, r := range rows {
		if r.Training == nil || r.Training.Config.Rank != 8 || r.Training.Config.TrainSeqs != 12 {
			t.Errorf("%s: training %+v", r.Run, r.Training)
		}
	}
}
