package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/t2m/t2m/internal/atomicfile"
)

// Report is the content of <split>_report.json. The embedded Rates cover every
// example (negatives included, as the original counts them) and keep the
// original's key names (total, syntax_pass_rate, operator_pass_rate,
// field_pass_rate, overall_pass_rate), so reports of either program compare.
type Report struct {
	RunName         string `json:"run_name"`
	Split           string `json:"split"`
	SplitFile       string `json:"split_file,omitempty"`
	PredictionsFile string `json:"predictions_file,omitempty"`
	Rates
	// NonNegative restricts the rates to examples whose gold output is a query.
	NonNegative        Rates           `json:"non_negative"`
	Negatives          int             `json:"negatives"`
	HeldOutCollections []string        `json:"held_out_collections"`
	Generalization     *Generalization `json:"generalization"`
	// Provenance says how the report was made (command, model, adapter, data, settings, timings,
	// version); nil in reports written before t2m recorded it and in the original's.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// WriteReports writes <dir>/<split>_predictions.jsonl (one Result per line) and
// <dir>/<split>_report.json, creating dir. Both are written to temporary files
// first and then replaced together (atomicfile.WriteFiles): an error (a full disk,
// a folder in the way) leaves the previous pair as it was, never a new predictions
// file beside an old report.
func WriteReports(dir, split string, results []Result, rep *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	predPath := filepath.Join(dir, split+"_predictions.jsonl")
	buffered := func(fill func(w *bufio.Writer) error) func(io.Writer) error {
		return func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 1<<16)
			if err := fill(bw); err != nil {
				return err
			}
			return bw.Flush()
		}
	}
	// The predictions and the report are one result: both are replaced or neither (a report must never
	// describe other predictions than the ones beside it).
	err := atomicfile.WriteFiles(atomicfile.File{Path: predPath, Perm: 0o644, Fill: buffered(func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := range results {
			if err := enc.Encode(&results[i]); err != nil {
				return fmt.Errorf("example %d: %w", i, err)
			}
		}
		return nil
	})}, atomicfile.File{Path: filepath.Join(dir, split+"_report.json"), Perm: 0o644, Fill: buffered(func(w *bufio.Writer) error {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})})
	if err != nil {
		return fmt.Errorf("write reports (the previous %s files, if any, are unchanged): %w", split, err)
	}
	return nil
}

// WriteFileAtomic writes path (mode 0644) through fill and a 64 KiB buffer,
// atomically (internal/atomicfile): on any error path is left as it was and no
// temporary file remains.
func WriteFileAtomic(path string, fill func(w *bufio.Writer) error) error {
	return atomicfile.WriteFile(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<16)
		if err := fill(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// ReadReport reads a <split>_report.json (t2m's, or the original's, whose extra
// columns then read as zero and are marked absent by the comparison table).
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("read report %s: not a report JSON object: %w", path, err)
	}
	return &rep, nil
}
