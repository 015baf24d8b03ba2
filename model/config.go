package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Config is the Qwen2 architecture as read from a Hugging Face config.json.
type Config struct {
	HiddenSize            int     // H
	IntermediateSize      int     // I, the SwiGLU width
	NumLayers             int     // L
	NumHeads              int     // query heads
	NumKVHeads            int     // key/value heads; each serves NumHeads/NumKVHeads query heads
	HeadDim               int     // D; HiddenSize/NumHeads when config.json has no head_dim
	VocabSize             int     // V
	RMSNormEps            float32 // ε in x·rsqrt(mean(x²)+ε)
	RopeTheta             float32 // θ in inv_freq = θ^(−2i/D)
	TieWordEmbeddings     bool    // lm_head.weight is model.embed_tokens.weight
	MaxPositionEmbeddings int
	Dtype                 string // stored weight dtype ("bfloat16", "float16", "float32"), informative
}

// configJSON holds both generations of keys: classic (rope_theta, torch_dtype) and transformers ≥ 5
// (rope_parameters.rope_theta, dtype).
type configJSON struct {
	ModelType             string   `json:"model_type"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HeadDim               int      `json:"head_dim"`
	VocabSize             int      `json:"vocab_size"`
	RMSNormEps            *float64 `json:"rms_norm_eps"`
	RopeTheta             *float64 `json:"rope_theta"`
	TorchDtype            string   `json:"torch_dtype"`
	Dtype                 string   `json:"dtype"`
	TieWordEmbeddings     *bool    `json:"tie_word_embeddings"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	HiddenAct             string   `json:"hidden_act"`
	UseSlidingWindow      bool     `json:"use_sliding_window"`
	RopeParameters        *struct {
		RopeTheta *float64 `json:"rope_theta"`
		RopeType  string   `json:"rope_type"`
	} `json:"rope_parameters"`
	RopeScaling *struct {
		RopeType string `json:"rope_type"`
		Type     string `json:"type"`
	} `json:"rope_scaling"`
}

// ParseConfig decodes a config.json body; name is used in error messages.
func ParseConfig(name string, data []byte) (Config, error) {
	var j configJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return Config{}, fmt.Errorf("%s: not a valid config.json: %w", name, err)
	}
	if j.ModelType != "" && j.ModelType != "qwen2" {
		return Config{}, fmt.Errorf("%s: model_type %q is not supported (only qwen2)", name, j.ModelType)
	}
	if j.HiddenAct != "" && j.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("%s: hidden_act %q is not supported (only silu)", name, j.HiddenAct)
	}
	if j.UseSlidingWindow {
		return Config{}, fmt.Errorf("%s: use_sliding_window is true; sliding-window attention is not supported", name)
	}
	c := Config{
		HiddenSize:            j.HiddenSize,
		IntermediateSize:      j.IntermediateSize,
		NumLayers:             j.NumHiddenLayers,
		NumHeads:              j.NumAttentionHeads,
		NumKVHeads:            j.NumKeyValueHeads,
		HeadDim:               j.HeadDim,
		VocabSize:             j.VocabSize,
		RMSNormEps:            1e-6,
		RopeTheta:             10000,
		TieWordEmbeddings:     false,
		MaxPositionEmbeddings: j.MaxPositionEmbeddings,
		Dtype:                 j.Dtype,
	}
	if c.Dtype == "" {
		c.Dtype = j.TorchDtype
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if j.RMSNormEps != nil {
		c.RMSNormEps = float32(*j.RMSNormEps)
	}
	switch {
	case j.RopeParameters != nil && j.RopeParameters.RopeTheta != nil:
		c.RopeTheta = float32(*j.RopeParameters.RopeTheta)
		if t := j.RopeParameters.RopeType; t != "" && t != "default" {
			return Config{}, fmt.Errorf("%s: rope_parameters.rope_type %q is not supported (only default)", name, t)
		}
	case j.RopeTheta != nil:
		c.RopeTheta = float32(*j.RopeTheta)
	}
	if s := j.RopeScaling; s != nil && (s.RopeType != "" && s.RopeType != "default" || s.Type != "" && s.Type != "default") {
		return Config{}, fmt.Errorf("%s: rope_scaling is not supported", name)
	}
	if j.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *j.TieWordEmbeddings
	}
	if c.HeadDim == 0 && c.NumHeads > 0 {
		if c.HiddenSize%c.NumHeads != 0 {
			return Config{}, fmt.Errorf("%s: hidden_size %d is not a multiple of num_attention_heads %d (and there is no head_dim): the config is inconsistent",
				name, c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading model config: %w", err)
	}
	return ParseConfig(path, data)
}

// Validate checks that the sizes are positive and consistent (heads divisible by KV heads, even head_dim).
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize}, {"num_hidden_layers", c.NumLayers},
		{"num_attention_heads", c.NumHeads}, {"num_key_value_heads", c.NumKVHeads}, {"head_dim", c.HeadDim},
		{"vocab_size", c.VocabSize}} {
		if f.v <= 0 {
			return fmt.Errorf("config %s = %d, want > 0", f.name, f.v)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("config num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("config head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) {
		return fmt.Errorf("config rms_norm_eps %g and rope_theta %g must be > 0", c.RMSNormEps, c.RopeTheta)
	}
	return nil
}

// QDim is the width of the query projection, NumHeads·HeadDim.
func (c Config) QDim() int { return c.NumHeads * c.HeadDim }

// KVDim is the width of the key and value projections, NumKVHeads·HeadDim.
func (c Config) KVDim() int { return c.NumKVHeads * c.HeadDim }

// Registered is a model known by name.
type Registered struct {
	Name   string
	HFRepo string // Hugging Face repository the weights come from; "" for built-in random weights
	Config Config
	Seed   int64 // seed of the built-in random weights (HFRepo == "")
}

var registry = map[string]Registered{
	"qwen2.5-coder-7b": {
		Name:   "qwen2.5-coder-7b",
		HFRepo: "Qwen/Qwen2.5-Coder-7B-Instruct",
		Config: Config{HiddenSize: 3584, IntermediateSize: 18944, NumLayers: 28, NumHeads: 28, NumKVHeads: 4,
			HeadDim: 128, VocabSize: 152064, RMSNormEps: 1e-6, RopeTheta: 1e6, TieWordEmbeddings: false,
			MaxPositionEmbeddings: 32768, Dtype: "bfloat16"},
	},
	// tiny has the 7B's architecture (GQA 2, biases, untied lm_head) and its vocabulary size, so the real
	// tokenizer's ids fit, at a size that runs in milliseconds on a CPU.
	"tiny": {
		Name: "tiny",
		Config: Config{HiddenSize: 64, IntermediateSize: 128, NumLayers: 2, NumHeads: 4, NumKVHeads: 2,
			HeadDim: 16, VocabSize: 152064, RMSNormEps: 1e-6, RopeTheta: 1e6, TieWordEmbeddings: false,
			MaxPositionEmbeddings: 32768, Dtype: "float32"},
		Seed: 42,
	},
}

// Lookup returns the registered model of that name.
func Lookup(name string) (Registered, error) {
	r, ok := registry[name]
	if !ok {
		return Registered{}, fmt.Errorf("unknown model %q (known: %v, or pass a directory with config.json)", name, RegisteredNames())
	}
	return r, nil
}

// RegisteredNames lists the registry, sorted.
func RegisteredNames() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
