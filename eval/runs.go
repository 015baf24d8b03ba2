package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TrainingConfigFile is the file t2m train writes into a run folder (pipeline.TrainConfigFile).
const TrainingConfigFile = "training_config.json"

// TrainingConfig is what t2m compare reads of a training_config.json: the model, the settings shown
// beside the results, and the provenance. The JSON names are those pipeline.TrainRecord and
// train.Fingerprint write.
type TrainingConfig struct {
	Model  string `json:"model"`
	Config struct {
		Rank      int     `json:"lora_r"`
		Alpha     float64 `json:"lora_alpha"`
		Epochs    int     `json:"epochs"`
		BatchSize int     `json:"batch_size"`
		GradAccum int     `json:"grad_accum"`
		LR        float64 `json:"learning_rate"`
		MaxLen    int     `json:"max_len"`
		TrainSeqs int     `json:"train_sequences"`
		EvalSeqs  int     `json:"eval_sequences"`
	} `json:"config"`
	Provenance *Provenance `json:"provenance,omitempty"`
	// Path is the file it was read from.
	Path string `json:"-"`
}

// ReadTrainingConfig reads a training_config.json; (nil, nil) when path does not exist.
func ReadTrainingConfig(path string) (*TrainingConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read training config: %w", err)
	}
	var tc TrainingConfig
	if err := json.Unmarshal(b, &tc); err != nil {
		return nil, fmt.Errorf("read training config %s: not a training_config.json object: %w", path, err)
	}
	tc.Path = path
	return &tc, nil
}

// trainingFor finds the training record of a run folder: its own training_config.json, else the one
// beside the adapter its reports were made with (an eval written under another --run-name).
func trainingFor(runDir string, reports []*Report) (*TrainingConfig, error) {
	tc, err := ReadTrainingConfig(filepath.Join(runDir, TrainingConfigFile))
	if tc != nil || err != nil {
		return tc, err
	}
	for _, r := range reports {
		if p := r.Provenance; p != nil && p.Adapter != nil {
			return ReadTrainingConfig(filepath.Join(filepath.Dir(p.Adapter.Path), TrainingConfigFile))
		}
	}
	return nil, nil
}

// runSummary is one run of the comparison: its reports by split and what made them.
type runSummary struct {
	name     string
	splits   map[string]*Report
	training *TrainingConfig
	model    *ModelRef // from the reports' provenance, else the training record's
	adapter  bool      // made with an adapter (t2m eval)
	base     bool      // made by a base model (t2m baseline)
}

// summarize groups rows by run, in the rows' order.
func summarize(rows []ComparisonRow) []*runSummary {
	var runs []*runSummary
	byName := map[string]*runSummary{}
	for _, r := range rows {
		s := byName[r.Run]
		if s == nil {
			s = &runSummary{name: r.Run, splits: map[string]*Report{}}
			byName[r.Run] = s
			runs = append(runs, s)
		}
		s.splits[r.Split] = r.Report
		if r.Training != nil {
			s.training = r.Training
		}
		if p := r.Report.Provenance; p != nil && p.Model != nil {
			s.model = p.Model
			if p.Adapter != nil {
				s.adapter = true
			} else {
				s.base = true
			}
		}
	}
	for _, s := range runs {
		if s.model == nil && s.training != nil && s.training.Provenance != nil {
			s.model = s.training.Provenance.Model
		}
	}
	return runs
}

// splitSHA256 is the sha256 of the split file a report scored, as its provenance recorded it ("" when
// unknown).
func splitSHA256(r *Report) string {
	if r == nil || r.Provenance == nil {
		return ""
	}
	for _, d := range r.Provenance.Data {
		if filepath.Base(d.Path) == filepath.Base(r.SplitFile) {
			return d.SHA256
		}
	}
	return ""
}

// comparable says whether two reports scored the same examples: the same count and, where both
// recorded it, the same split file content.
func comparable(a, b *Report) bool {
	if a.Total != b.Total {
		return false
	}
	sa, sb := splitSHA256(a), splitSHA256(b)
	return sa == "" || sb == "" || sa == sb
}

// gainSplits are the splits whose overall rate the runs table shows, with the gain over the baseline.
var gainSplits = []string{"eval", "held_out"}

// baselineOf picks the baseline run of s's model among runs: one whose reports scored the same examples
// when there is one, else the first (in name order); nil when s has no adapter or no such run exists.
func baselineOf(s *runSummary, runs []*runSummary) *runSummary {
	if !s.adapter || s.model == nil {
		return nil
	}
	var first *runSummary
	for _, b := range runs {
		if !b.base || b.model.Key() != s.model.Key() {
			continue
		}
		if first == nil {
			first = b
		}
		same := true
		for _, split := range gainSplits {
			if r, br := s.splits[split], b.splits[split]; r != nil && br != nil && !comparable(r, br) {
				same = false
			}
		}
		if same {
			return b
		}
	}
	return first
}

// runsTable is the comparison's per-run table: the training settings (from the run's training record),
// the overall rate of the eval and held_out reports, and an adapter's gain over the baseline of the same
// model ("—" when there is none).
func runsTable(rows []ComparisonRow) []string {
	runs := summarize(rows)
	lines := []string{"", "## Runs: training settings and gain over the baseline of the same model", "",
		"| Run | Model | r | alpha | epochs | lr | max-len | train examples | eval overall | held_out overall | baseline | gain eval | gain held_out |",
		"|-----|-------|---|-------|--------|----|---------|----------------|--------------|------------------|----------|-----------|---------------|"}
	const none = "—"
	for _, s := range runs {
		model := none
		if s.model != nil {
			model = mdCell(s.model.Name)
		} else if s.training != nil && s.training.Model != "" {
			model = mdCell(s.training.Model)
		}
		set := []string{none, none, none, none, none, none}
		if t := s.training; t != nil {
			c := t.Config
			set = []string{fmt.Sprint(c.Rank), fmt.Sprintf("%g", c.Alpha), fmt.Sprint(c.Epochs), fmt.Sprintf("%g", c.LR),
				fmt.Sprint(c.MaxLen), fmt.Sprint(c.TrainSeqs)}
		}
		var overall []string
		for _, split := range gainSplits {
			if r := s.splits[split]; r != nil {
				overall = append(overall, pct(r.OverallPassRate))
			} else {
				overall = append(overall, none)
			}
		}
		baseName, gains := none, []string{none, none}
		if s.base && !s.adapter {
			baseName = "(this run)"
		}
		if b := baselineOf(s, runs); b != nil {
			baseName = mdCell(b.name)
			for i, split := range gainSplits {
				r, br := s.splits[split], b.splits[split]
				switch {
				case r == nil || br == nil:
				case !comparable(r, br):
					gains[i] = none + " (other examples)"
				default:
					gains[i] = pts(r.OverallPassRate - br.OverallPassRate)
				}
			}
		}
		cells := append(append(append([]string{mdCell(s.name), model}, set...), overall...), baseName)
		lines = append(lines, "| "+strings.Join(append(cells, gains...), " | ")+" |")
	}
	return lines
}
