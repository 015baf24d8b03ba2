package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/safetensors"
)

// Checkpoint files inside runs/<run>/checkpoint/.
const (
	checkpointState   = "state.json"
	checkpointTensors = "state.safetensors"
	checkpointVersion = 1
)

// Fingerprint is what a resumed run must share with the run that wrote the checkpoint: everything that
// decides the batches, the shapes and the update rule (the run's recipe). training_config.json records it
// as "config".
type Fingerprint struct {
	Model   string  `json:"model"`
	Rank    int     `json:"lora_r"`
	Alpha   float64 `json:"lora_alpha"`
	Dropout float64 `json:"lora_dropout"`
	// Targets are the adapted projections, sorted and comma-separated ("gate_proj,k_proj,..."); a
	// checkpoint written before t2m recorded them has "" and lora.DefaultTargets (TargetsKey).
	Targets string `json:"lora_target_modules"`
	// InitAdapter is the PEFT adapter the run started from ("": a fresh adapter from Seed) and
	// InitAdapterSHA256 the SHA-256 of its adapter_model.safetensors.
	InitAdapter       string  `json:"init_adapter,omitempty"`
	InitAdapterSHA256 string  `json:"init_adapter_sha256,omitempty"`
	Epochs            int     `json:"epochs"`
	BatchSize         int     `json:"batch_size"`
	GradAccum         int     `json:"grad_accum"`
	LR                float64 `json:"learning_rate"`
	Scheduler         string  `json:"lr_scheduler"`
	WarmupRatio       float64 `json:"warmup_ratio"`
	WeightDecay       float64 `json:"weight_decay"`
	MaxGradNorm       float64 `json:"max_grad_norm"`
	MaxLen            int     `json:"max_len"`
	Seed              uint64  `json:"seed"`
	TrainSeqs         int     `json:"train_sequences"`
	TrainTokens       int     `json:"train_tokens"`
	EvalSeqs          int     `json:"eval_sequences"`
	Quantization      string  `json:"quantization"`
	// DataSHA256 is DataSHA256 of the tokenized train and eval sequences: a resumed run must see the same
	// data, not only the same amount of it.
	DataSHA256 string `json:"data_sha256"`
}

// FingerprintDiff lists the settings in which a checkpoint's fingerprint differs from now's, one
// "name: checkpoint X, now Y" line each, by their training_config.json names.
func FingerprintDiff(checkpoint, now Fingerprint) []string {
	var a, b map[string]any
	ja, _ := json.Marshal(checkpoint)
	jb, _ := json.Marshal(now)
	_ = json.Unmarshal(ja, &a)
	_ = json.Unmarshal(jb, &b)
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		x, y := fmt.Sprint(a[k]), fmt.Sprint(b[k])
		if _, ok := a[k]; !ok {
			x = "(none)"
		}
		if _, ok := b[k]; !ok {
			y = "(none)"
		}
		if x != y {
			out = append(out, fmt.Sprintf("%s: checkpoint %s, now %s", k, x, y))
		}
	}
	return out
}

// TargetsKey is Fingerprint.Targets of an adapter's target modules: sorted, without repeats, joined by
// commas.
func TargetsKey(targets []string) string {
	return strings.Join(lora.Config{R: 1, Targets: targets}.WithDefaults().Targets, ",")
}

// DataSHA256 is the hex SHA-256 of the tokenized train and eval sequences (ids, prompt lengths, order),
// what a checkpoint's batches were drawn from.
func DataSHA256(trainSeqs, evalSeqs []data.Sequence) string {
	h := sha256.New()
	var buf [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	for _, seqs := range [][]data.Sequence{trainSeqs, evalSeqs} {
		put(uint64(len(seqs)))
		for _, s := range seqs {
			put(uint64(len(s.IDs)))
			put(uint64(s.PromptLen))
			for _, id := range s.IDs {
				binary.LittleEndian.PutUint32(buf[:4], uint32(id))
				h.Write(buf[:4])
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CheckResume checks a loaded checkpoint state against the run about to continue it: the same settings
// and data (fp), and a position that this run's plan has (windows updates per epoch). A damaged or
// hand-edited state.json is an error naming the field, never a panic, a hang or a run that claims more
// updates than its plan.
func (st State) CheckResume(dir string, fp Fingerprint, windows int) error {
	// "" is the default targets: a checkpoint written before they were recorded, or a caller that leaves
	// them unset.
	if st.Fingerprint.Targets == "" {
		st.Fingerprint.Targets = TargetsKey(nil)
	}
	if fp.Targets == "" {
		fp.Targets = TargetsKey(nil)
	}
	saved := st.Fingerprint
	if saved.DataSHA256 != fp.DataSHA256 {
		saved.DataSHA256 = fp.DataSHA256
		if saved == fp && st.Fingerprint.DataSHA256 == "" {
			return fmt.Errorf("%s was written by an older t2m that did not record its data's sha256: it cannot be checked, so it is not resumed; start a new --run-name", dir)
		}
		if saved == fp {
			return fmt.Errorf("%s was written for other training data (sha256 of the tokenized splits %.12s…, now %.12s…): "+
				"the data changed since; resume with the data it was trained on, or start a new --run-name", dir, st.Fingerprint.DataSHA256, fp.DataSHA256)
		}
	}
	if st.Fingerprint != fp {
		return fmt.Errorf("%s was written with other settings:\n  %s\nresume with the same flags (and recipe), or start a new --run-name",
			dir, strings.Join(FingerprintDiff(st.Fingerprint, fp), "\n  "))
	}
	total := windows * fp.Epochs
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s is damaged: %s; this run has %d epochs of %d updates: start a new --run-name (or delete %s)",
			dir, checkpointState, fmt.Sprintf(format, a...), fp.Epochs, windows, dir)
	}
	switch {
	case st.Epoch < 0 || st.Epoch > fp.Epochs:
		return bad("epoch %d is outside [0, %d]", st.Epoch, fp.Epochs)
	case st.Window < 0 || st.Window >= windows:
		return bad("window %d is outside [0, %d)", st.Window, windows)
	case st.Epoch == fp.Epochs && st.Window != 0:
		return bad("window %d after the last epoch", st.Window)
	case st.Step != st.Epoch*windows+st.Window:
		return bad("step %d does not match epoch %d, window %d (want %d)", st.Step, st.Epoch, st.Window, st.Epoch*windows+st.Window)
	case st.Step < 0 || st.Step > total:
		return bad("step %d is outside [0, %d]", st.Step, total)
	case st.AdamStep != st.Step:
		return bad("adam_step %d differs from step %d", st.AdamStep, st.Step)
	case st.HasBest && (math.IsNaN(st.BestEval) || math.IsInf(st.BestEval, 0)):
		return bad("best_eval_loss %v is not a finite number", st.BestEval)
	case st.EarlyStop.damage(st.Step) != "":
		return bad("%s", st.EarlyStop.damage(st.Step))
	}
	return nil
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
	// EarlyStop is early stopping's state (Run.EarlyStopping); absent when the run does not stop early.
	EarlyStop EarlyStopState `json:"early_stopping,omitzero"`
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
