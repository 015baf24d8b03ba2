package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
}

// WriteReports writes <dir>/<split>_predictions.jsonl (one Result per line) and
// <dir>/<split>_report.json, creating dir. Each file is written to a temporary
// file in dir and renamed into place, so an interruption never leaves a
// half-written report.
func WriteReports(dir, split string, results []Result, rep *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	predPath := filepath.Join(dir, split+"_predictions.jsonl")
	err := WriteFileAtomic(predPath, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := range results {
			if err := enc.Encode(&results[i]); err != nil {
				return fmt.Errorf("example %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, split+"_report.json"), func(w *bufio.Writer) error {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

// WriteFileAtomic writes path through fill: into a temporary file beside path,
// synced, then renamed over path. On any error the temporary file is removed and
// path is left as it was.
func WriteFileAtomic(path string, fill func(w *bufio.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<16)
	if err := fill(w); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
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
