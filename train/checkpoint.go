package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/safetensors"
)

// Checkpoint files inside runs/<run>/checkpoint/.
const (
	checkpointState   = "state.json"
	checkpointTensors = "state.safetensors"
	checkpointVersion = 1
)

// Fingerprint is what a resumed run must share with the run that wrote the checkpoint: everything that
// decides the batches, the shapes and the update rule.
type Fingerprint struct {
	Model        string  `json:"model"`
	Rank         int     `json:"lora_r"`
	Alpha        float64 `json:"lora_alpha"`
	Dropout      float64 `json:"lora_dropout"`
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	GradAccum    int     `json:"grad_accum"`
	LR           float64 `json:"learning_rate"`
	Scheduler    string  `json:"lr_scheduler"`
	WarmupRatio  float64 `json:"warmup_ratio"`
	WeightDecay  float64 `json:"weight_decay"`
	MaxGradNorm  float64 `json:"max_grad_norm"`
	MaxLen       int     `json:"max_len"`
	Seed         uint64  `json:"seed"`
	TrainSeqs    int     `json:"train_sequences"`
	TrainTokens  int     `json:"train_tokens"`
	EvalSeqs     int     `json:"eval_sequences"`
	Quantization string  `json:"quantization"`
}

// State is where a run stands after an update: the next update is Step, the window Window of epoch
// Epoch. The random state is the seed alone: batches of epoch e are shuffled with Seed+e and the dropout
// masks of micro-batch k of update s use step s·GradAccum+k, so nothing else needs saving.
type State struct {
	Version     int         `json:"version"`
	Step        int         `json:"step"`   // updates done
	Epoch       int         `json:"epoch"`  // epoch of the next update (0-based)
	Window      int         `json:"window"` // accumulation window of that epoch (0-based)
	BestEval    float64     `json:"best_eval_loss"`
	HasBest     bool        `json:"has_best"`
	AdamStep    int         `json:"adam_step"`
	Fingerprint Fingerprint `json:"config"`
	RNG         string      `json:"rng"`
}

// SaveCheckpoint writes state, the parameters and the AdamW moments to dir, atomically
// (atomicfile.ReplaceDir): into a new directory that then replaces dir (the previous one is kept as
// dir.old until the swap is done), so an interruption leaves the old checkpoint or the new one, never a mix.
func SaveCheckpoint(dir string, st State, p *Params, opt *AdamW) error {
	st.Version, st.AdamStep = checkpointVersion, opt.Step
	var ts []safetensors.Tensor
	for i, m := range p.Modules {
		for k, ab := range []string{"A", "B"} {
			v := 2*i + k
			name := m + ".lora_" + ab
			n := len(p.Values[v])
			ts = append(ts,
				safetensors.F32Tensor(name, []int{n}, p.Values[v]),
				safetensors.F32Tensor(name+".exp_avg", []int{n}, opt.M[v]),
				safetensors.F32Tensor(name+".exp_avg_sq", []int{n}, opt.V[v]))
		}
	}
	stJSON, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := atomicfile.ReplaceDir(dir, func(tmp string) error {
		if err := safetensors.Write(filepath.Join(tmp, checkpointTensors), ts, map[string]string{"format": "t2m-checkpoint"}); err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(tmp, checkpointState), 0o644, func(w io.Writer) error {
			_, err := w.Write(append(stJSON, '\n'))
			return err
		})
	}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return nil
}

// ErrNoCheckpoint is returned by LoadCheckpoint when dir holds none.
var ErrNoCheckpoint = errors.New("no checkpoint")

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint into p and opt (same modules and sizes),
// falling back to dir.old when a save was interrupted during the swap. It returns the saved state.
func LoadCheckpoint(dir string, p *Params, opt *AdamW) (State, error) {
	var st State
	if _, err := os.Stat(filepath.Join(dir, checkpointState)); errors.Is(err, fs.ErrNotExist) {
		if _, errOld := os.Stat(filepath.Join(dir+".old", checkpointState)); errOld != nil {
			return st, fmt.Errorf("%w in %s", ErrNoCheckpoint, dir)
		}
		dir += ".old"
	}
	raw, err := os.ReadFile(filepath.Join(dir, checkpointState))
	if err != nil {
		return st, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("checkpoint %s: %s is not valid: %w", dir, checkpointState, err)
	}
	if st.Version != checkpointVersion {
		return st, fmt.Errorf("checkpoint %s: version %d, this t2m reads version %d", dir, st.Version, checkpointVersion)
	}
	f, err := safetensors.Open(filepath.Join(dir, checkpointTensors))
	if err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer f.Close()
	for i, m := range p.Modules {
		for k, ab := range []string{"A", "B"} {
			v := 2*i + k
			name := m + ".lora_" + ab
			for _, dst := range []struct {
				name string
				into []float32
			}{{name, p.Values[v]}, {name + ".exp_avg", opt.M[v]}, {name + ".exp_avg_sq", opt.V[v]}} {
				src, err := f.Float32(dst.name)
				if err != nil {
					return st, fmt.Errorf("checkpoint %s: tensor %s: %w (was it written for another model or LoRA config?)", dir, dst.name, err)
				}
				if len(src) != len(dst.into) {
					return st, fmt.Errorf("checkpoint %s: tensor %s has %d values, this run needs %d", dir, dst.name, len(src), len(dst.into))
				}
				copy(dst.into, src)
			}
		}
	}
	opt.Step = st.AdamStep
	return st, nil
}
