package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/internal/version"
)

// inputs are what a run reads, hashed before it starts: the provenance of its reports and records
// (eval.Provenance) without the settings and timings only the run knows.
type inputs struct {
	command   []string
	model     *eval.ModelRef
	adapter   *eval.AdapterRef
	tokenizer *eval.TokenizerRef
	data      []eval.FileRef
}

// hashInputs records the command line (nil: os.Args), the model (a registry name, or the directory with
// the sha256 of its config.json), the adapter folder (the sha256 of adapter_model.safetensors and
// adapter_config.json; "" for none), the tokenizer file (or the built-in one) and each data file.
func hashInputs(command []string, mo ModelOptions, adapterDir string, dataFiles ...string) (*inputs, error) {
	if command == nil {
		command = os.Args
	}
	in := &inputs{command: append([]string(nil), command...)}
	dir := ""
	if st, err := os.Stat(filepath.Join(mo.Model, "config.json")); err == nil && !st.IsDir() {
		dir = mo.Model
		cfg, err := eval.HashFile(filepath.Join(dir, "config.json"))
		if err != nil {
			return nil, err
		}
		in.model = &eval.ModelRef{Name: filepath.Base(filepath.Clean(dir)), Path: filepath.Dir(cfg.Path), ConfigSHA256: cfg.SHA256}
	} else {
		in.model = &eval.ModelRef{Name: mo.Model, Registered: true}
	}
	tokPath := mo.Tokenizer
	if tokPath == "" && dir != "" {
		tokPath = filepath.Join(dir, "tokenizer.json")
	}
	if tokPath == "" {
		in.tokenizer = &eval.TokenizerRef{BuiltIn: "byte tokenizer (one token per byte)"}
	} else {
		ref, err := eval.HashFile(tokPath)
		if err != nil {
			return nil, err
		}
		in.tokenizer = &eval.TokenizerRef{Path: ref.Path, SHA256: ref.SHA256}
	}
	if adapterDir != "" {
		w, err := eval.HashFile(filepath.Join(adapterDir, "adapter_model.safetensors"))
		if err != nil {
			return nil, err
		}
		in.adapter = &eval.AdapterRef{Path: filepath.Dir(w.Path), AdapterModelSHA256: w.SHA256}
		if c, err := eval.HashFile(filepath.Join(adapterDir, "adapter_config.json")); err == nil {
			in.adapter.AdapterConfigSHA256 = c.SHA256
		}
	}
	var err error
	if in.data, err = eval.HashFiles(dataFiles...); err != nil {
		return nil, err
	}
	return in, nil
}

// provenance completes in with a run's settings and timings, the version and, on a GPU, its name.
func (in *inputs) provenance(settings eval.Settings, timings eval.Timings, gpu string) *eval.Provenance {
	return &eval.Provenance{Command: in.command, T2MVersion: version.String(), CreatedAt: time.Now().Format(time.RFC3339),
		Model: in.model, Adapter: in.adapter, Tokenizer: in.tokenizer, Data: in.data, Settings: settings,
		Timings: timings, GPU: gpu}
}

// gpuName is the device's one-line description (name, memory, compute capability) when the run is on a
// GPU; "" on the CPU or when the device cannot say.
func gpuName(device string) string {
	if device == "" || device == "cpu" {
		return ""
	}
	d, ok := lookupDevice(device)
	if !ok || d.Describe == nil {
		return ""
	}
	s, err := d.Describe()
	if err != nil {
		return ""
	}
	return s
}

// existingReports lists the *_report.json files of the run folder dir (none when it does not exist);
// a folder of that name is not a report (writing there fails with its own message).
func existingReports(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*_report.json"))
	var names []string
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			names = append(names, filepath.Base(f))
		}
	}
	return names
}

// refuseOverwrite is the error for a run folder that already holds reports when --overwrite was not
// given; nil when it holds none.
func refuseOverwrite(dir string) error {
	if names := existingReports(dir); len(names) > 0 {
		return fmt.Errorf("run folder %s already holds reports (%s): pass --overwrite to replace them, or choose another --run-name",
			dir, strings.Join(names, ", "))
	}
	return nil
}

// trainInputs hashes what Train read: the model, the tokenizer and DataDir's train and eval splits
// (ReadSplit's paths), with opts.CommandLine (nil: the process's os.Args).
func trainInputs(opts TrainOptions) (*inputs, error) {
	return hashInputs(opts.CommandLine, opts.ModelOptions, "", filepath.Join(opts.DataDir, "train.jsonl"),
		filepath.Join(opts.DataDir, "eval.jsonl"))
}

// trainProvenance is TrainConfigFile's provenance: the settings that are not in its config (the
// fingerprint) and the timings: load (reading, tokenizing, loading, set-up), training, wall.
func (in *inputs) trainProvenance(opts TrainOptions, m *Model, load, training, wall time.Duration) *eval.Provenance {
	seed := opts.Seed
	return in.provenance(eval.Settings{Device: m.Device, Quantization: m.Quant, MaxLen: opts.MaxLen, Limit: opts.Limit,
		Seed: &seed}, eval.Timings{LoadSeconds: load.Seconds(), TrainingSeconds: training.Seconds(),
		WallSeconds: wall.Seconds()}, gpuName(m.Device))
}
