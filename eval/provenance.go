package eval

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Provenance says how a report (or a training record) was made: enough to tell two results apart and to
// run the command again on the same inputs. t2m score, baseline and eval put it in every
// <split>_report.json, t2m train in training_config.json, and t2m compare prints it under its tables.
// Reports written before it existed (and the original's) have none.
type Provenance struct {
	// Command is the exact command line (os.Args: the program as invoked, then each argument).
	Command []string `json:"command"`
	// T2MVersion is the binary's version line, the string `t2m --version` prints (internal/version).
	T2MVersion string `json:"t2m_version"`
	// CreatedAt is when the record was written (RFC 3339, local time with its offset).
	CreatedAt string `json:"created_at"`
	// Model is the model that produced the outputs (absent for t2m score, which has none).
	Model *ModelRef `json:"model,omitempty"`
	// Adapter is the LoRA adapter applied (t2m eval), absent for the base model.
	Adapter *AdapterRef `json:"adapter,omitempty"`
	// Tokenizer encoded the prompts (absent for t2m score).
	Tokenizer *TokenizerRef `json:"tokenizer,omitempty"`
	// Data are the split files read, each with the sha256 of the whole file (Settings.Limit says how
	// many examples of each were used).
	Data []FileRef `json:"data"`
	// Predictions is the predictions file t2m score scored (absent when it scored --gold or generated).
	Predictions *FileRef `json:"predictions,omitempty"`
	// Settings are the options that affect the numbers.
	Settings Settings `json:"settings"`
	// Timings are the run's durations, in seconds.
	Timings Timings `json:"timings"`
	// GPU names the GPU when the run used one (its name, memory and compute capability).
	GPU string `json:"gpu,omitempty"`
}

// ModelRef names a model: a registry name (Registered), or a directory with the sha256 of its
// config.json (the architecture; the weights are too large to hash on every run).
type ModelRef struct {
	Name         string `json:"name"` // registry name or the directory's base name
	Registered   bool   `json:"registered,omitempty"`
	Path         string `json:"path,omitempty"`          // absolute directory
	ConfigSHA256 string `json:"config_sha256,omitempty"` // of Path/config.json
}

// Key identifies the model for comparisons: two runs with equal keys ran the same model (the same
// registry name, or a directory of the same name and config.json).
func (m *ModelRef) Key() string {
	if m == nil {
		return ""
	}
	if m.Registered {
		return "registered:" + m.Name
	}
	return m.Name + "@" + m.ConfigSHA256
}

// AdapterRef is a PEFT adapter folder and the sha256 of its adapter_model.safetensors (the weights).
type AdapterRef struct {
	Path                string `json:"path"` // absolute folder
	AdapterModelSHA256  string `json:"adapter_model_sha256"`
	AdapterConfigSHA256 string `json:"adapter_config_sha256,omitempty"`
}

// TokenizerRef is a tokenizer.json file, or the built-in byte tokenizer (BuiltIn set, no file).
type TokenizerRef struct {
	BuiltIn string `json:"built_in,omitempty"`
	Path    string `json:"path,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

// FileRef is a file read by the run: its absolute path, size and sha256.
type FileRef struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Settings are the options that change a run's numbers. Zero fields a command does not have are left
// out (score has no model settings); Limit is always written (0: every example).
type Settings struct {
	Device             string   `json:"device,omitempty"`       // cpu or cuda
	Quantization       string   `json:"quantization,omitempty"` // none or nf4
	MaxLen             int      `json:"max_len,omitempty"`      // prompt tokens kept (train: per example)
	MaxNewTokens       int      `json:"max_new_tokens,omitempty"`
	Limit              int      `json:"limit"`
	HeldOutCollections []string `json:"held_out_collections,omitempty"`
	GenerationBatch    int      `json:"generation_batch,omitempty"` // prompts decoded together
	Decoding           string   `json:"decoding,omitempty"`         // "greedy" (eval and baseline never sample)
	Seed               *uint64  `json:"seed,omitempty"`             // train's seed
	Gold               bool     `json:"gold,omitempty"`             // score --gold
}

// Timings of a run, in seconds. For a report, Load is the model's load (shared by the splits of one
// command), Generation and Scoring are this split's, and Wall runs from the command's start to this
// report's writing; for training, Load covers reading, tokenizing and loading, Training the updates.
type Timings struct {
	LoadSeconds       float64 `json:"load_seconds,omitempty"`
	GenerationSeconds float64 `json:"generation_seconds,omitempty"`
	ScoringSeconds    float64 `json:"scoring_seconds,omitempty"`
	TrainingSeconds   float64 `json:"training_seconds,omitempty"`
	WallSeconds       float64 `json:"wall_seconds"`
}

// HashFile returns path's FileRef: its absolute path, size and sha256.
func HashFile(path string) (FileRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileRef{}, fmt.Errorf("provenance: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileRef{}, fmt.Errorf("provenance: reading %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return FileRef{Path: abs, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// HashFiles is HashFile of each path, in order.
func HashFiles(paths ...string) ([]FileRef, error) {
	refs := make([]FileRef, 0, len(paths))
	for _, p := range paths {
		r, err := HashFile(p)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}
