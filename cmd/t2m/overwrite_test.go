package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/t2m/t2m/eval"
)

// t2m score records its provenance (the command line, the split's and the predictions' sha256) and
// refuses to replace a split's report without --overwrite; eval and baseline refuse a run folder that
// holds reports, naming it and --overwrite.
func TestScoreProvenanceAndOverwrite(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	split := writeFile(t, filepath.Join(dir, "eval.jsonl"), scoreSplit)
	preds := writeFile(t, filepath.Join(dir, "preds.jsonl"), predLines(`{}`, `{}`, `{"error": "x"}`))
	args := []string{"score", "--split", split, "--predictions", preds, "--run-name", "r", "--output-dir", runs}
	if out, err := runApp(t, args...); err != nil {
		t.Fatalf("score: %v\n%s", err, out)
	}
	reportPath := filepath.Join(runs, "r", "eval_report.json")
	rep, err := eval.ReadReport(reportPath)
	if err != nil || rep.Provenance == nil {
		t.Fatalf("report %+v, %v", rep, err)
	}
	sum := func(path string) string {
		b, _ := os.ReadFile(path)
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:])
	}
	p := rep.Provenance
	if !reflect.DeepEqual(p.Command[1:], args) || p.T2MVersion != version() || len(p.Data) != 1 || p.Data[0].SHA256 != sum(split) ||
		p.Predictions == nil || p.Predictions.SHA256 != sum(preds) || p.Model != nil || p.Timings.WallSeconds <= 0 ||
		strings.Join(p.Settings.HeldOutCollections, ",") != strings.Join(eval.DefaultHeldOutCollections, ",") {
		t.Errorf("provenance %+v", p)
	}
	before, _ := os.ReadFile(reportPath)
	out, err := runApp(t, args...)
	wantErr(t, "a second score of the same split", out, err, "run folder "+filepath.Join(runs, "r")+" already holds eval_report.json", "--overwrite")
	if after, _ := os.ReadFile(reportPath); string(after) != string(before) {
		t.Error("the refused score changed the report")
	}
	if out, err := runApp(t, append(args, "--overwrite")...); err != nil {
		t.Fatalf("score --overwrite: %v\n%s", err, out)
	}
	// baseline into the folder that holds a report: refused before the model is loaded.
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	writeSplits(t, data)
	out, err = runApp(t, "baseline", "--model", "tiny", "--data-dir", data, "--output-dir", runs, "--run-name", "r", "--max-new-tokens", "1")
	wantErr(t, "baseline into a run with reports", out, err, "run folder "+filepath.Join(runs, "r")+" already holds reports (eval_report.json)",
		"pass --overwrite")
}
