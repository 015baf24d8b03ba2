package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/safetensors"
)

// File names of a PEFT adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// peftConfig is adapter_config.json: the LoraConfig fields PEFT writes (sorted, as
// PEFT's json.dump(sort_keys=True) orders them). Fields t2m does not support must
// keep their neutral values when loading.
type peftConfig struct {
	AlphaPattern        map[string]any  `json:"alpha_pattern"`
	AutoMapping         any             `json:"auto_mapping"`
	BaseModelNameOrPath string          `json:"base_model_name_or_path"`
	Bias                string          `json:"bias"`
	FanInFanOut         bool            `json:"fan_in_fan_out"`
	InferenceMode       bool            `json:"inference_mode"`
	InitLoraWeights     any             `json:"init_lora_weights"`
	LayersPattern       any             `json:"layers_pattern"`
	LayersToTransform   any             `json:"layers_to_transform"`
	LoraAlpha           json.Number     `json:"lora_alpha"`
	LoraBias            bool            `json:"lora_bias"`
	LoraDropout         float64         `json:"lora_dropout"`
	ModulesToSave       []string        `json:"modules_to_save"`
	PeftType            string          `json:"peft_type"`
	R                   int             `json:"r"`
	RankPattern         map[string]any  `json:"rank_pattern"`
	Revision            any             `json:"revision"`
	TargetModules       json.RawMessage `json:"target_modules"`
	TaskType            string          `json:"task_type"`
	UseDora             bool            `json:"use_dora"`
	UseRslora           bool            `json:"use_rslora"`
}

// tensorName is the saved key of a pair's A or B ("A"/"B").
func tensorName(path, ab string) string { return path + ".lora_" + ab + ".weight" }

// Save writes the adapter to dir in PEFT's format: adapter_config.json and
// adapter_model.safetensors with float32 lora_A/lora_B tensors (float32 keeps a
// training checkpoint exact; PEFT casts on load as it needs). Both files are written
// into a temporary directory next to dir which then replaces dir (atomicfile.ReplaceDir),
// so an interrupted Save leaves the previous adapter (in dir, or in dir.old if it died
// during the swap) or nothing, never a half-written one.
func (a *Adapter) Save(dir string) error {
	cfg := a.Config.WithDefaults()
	targets, _ := json.Marshal(cfg.Targets)
	pc := peftConfig{
		AlphaPattern:        map[string]any{},
		BaseModelNameOrPath: cfg.BaseModel,
		Bias:                "none",
		InferenceMode:       true,
		InitLoraWeights:     true,
		LoraAlpha:           json.Number(strconv.FormatFloat(cfg.Alpha, 'f', -1, 64)),
		LoraDropout:         cfg.Dropout,
		PeftType:            "LORA",
		R:                   cfg.R,
		RankPattern:         map[string]any{},
		TargetModules:       targets,
		TaskType:            "CAUSAL_LM",
		UseRslora:           cfg.RSLoRA,
	}
	cfgJSON, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return fmt.Errorf("lora: save %s: %w", dir, err)
	}
	var tensors []safetensors.Tensor
	for _, path := range a.Paths() {
		p := a.Pairs[path]
		if len(p.A) != cfg.R*p.In || len(p.B) != p.Out*cfg.R {
			return fmt.Errorf("lora: save %s: %s has %d/%d values for A [%d, %d] / B [%d, %d]",
				dir, path, len(p.A), len(p.B), cfg.R, p.In, p.Out, cfg.R)
		}
		tensors = append(tensors,
			safetensors.F32Tensor(tensorName(path, "A"), []int{cfg.R, p.In}, p.A),
			safetensors.F32Tensor(tensorName(path, "B"), []int{p.Out, cfg.R}, p.B))
	}

	if err := atomicfile.ReplaceDir(dir, func(tmp string) error {
		if err := safetensors.Write(filepath.Join(tmp, WeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(tmp, ConfigFile), 0o644, func(w io.Writer) error {
			_, err := w.Write(append(cfgJSON, '\n'))
			return err
		})
	}); err != nil {
		return fmt.Errorf("lora: save %s: %w", dir, err)
	}
	return nil
}

var keyRE = regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(\.default)?\.weight$`)

// Load reads a PEFT LoRA adapter from dir: keys with or without ".default", weights in
// F32, BF16 or F16 (converted to float32). Every pair must exist on the base model and
// match its dimensions (A [r, in], B [out, r]); errors name the tensor and file.
func Load(dir string, dims Dims) (*Adapter, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	buf, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	cfg, covers, err := parseConfig(cfgPath, buf)
	if err != nil {
		return nil, err
	}
	wPath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("lora: %s has no %s (only safetensors adapters are supported)", dir, WeightsFile)
		}
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer f.Close()

	a := &Adapter{Config: cfg, Pairs: map[string]*Pair{}}
	targets := map[string]bool{}
	for _, name := range f.Names() {
		m := keyRE.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("lora: %s: tensor %q is not a LoRA A/B weight of a decoder projection (unsupported)", wPath, name)
		}
		layer, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("lora: %s: tensor %q: bad layer index", wPath, name)
		}
		module := m[3]
		if moduleParent[module] != m[2] {
			return nil, fmt.Errorf("lora: %s: tensor %q: unknown module %s.%s", wPath, name, m[2], module)
		}
		in, out, ok := dims(layer, module)
		if !ok {
			return nil, fmt.Errorf("lora: %s: tensor %q: the base model has no %s in layer %d", wPath, name, module, layer)
		}
		if !covers.match(layer, m[2], module) {
			return nil, fmt.Errorf("lora: %s: tensor %q is for %s of layer %d, which %s does not adapt (%s): PEFT would not load it; "+
				"remove the tensor or fix the config", wPath, name, module, layer, cfgPath, covers)
		}
		info, err := f.Info(name)
		if err != nil {
			return nil, fmt.Errorf("lora: %w", err)
		}
		want := []int{cfg.R, in}
		if m[4] == "B" {
			want = []int{out, cfg.R}
		}
		if len(info.Shape) != 2 || info.Shape[0] != want[0] || info.Shape[1] != want[1] {
			return nil, fmt.Errorf("lora: %s: tensor %q has shape %v, but r=%d and the base model's %s is [out=%d, in=%d] need %v",
				wPath, name, info.Shape, cfg.R, module, out, in, want)
		}
		vals, err := f.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("lora: %w", err)
		}
		path, _ := ModulePath(layer, module)
		p := a.Pairs[path]
		if p == nil {
			p = &Pair{Layer: layer, Module: module, In: in, Out: out}
			a.Pairs[path] = p
		}
		dst := &p.A
		if m[4] == "B" {
			dst = &p.B
		}
		if *dst != nil {
			return nil, fmt.Errorf("lora: %s: tensor %q given twice (with and without .default?)", wPath, name)
		}
		*dst = vals
		targets[module] = true
	}
	if len(a.Pairs) == 0 {
		return nil, fmt.Errorf("lora: %s holds no LoRA tensors", wPath)
	}
	for _, path := range a.Paths() {
		p := a.Pairs[path]
		if p.A == nil || p.B == nil {
			return nil, fmt.Errorf("lora: %s: %s has lora_A without lora_B or the reverse", wPath, path)
		}
	}
	if len(a.Config.Targets) == 0 { // target_modules was a pattern: take what the file has
		for t := range targets {
			a.Config.Targets = append(a.Config.Targets, t)
		}
	}
	a.Config = a.Config.WithDefaults()
	return a, nil
}

// coverage is which projections adapter_config.json puts LoRA on, as PEFT decides it: target_modules (a
// list of module names, "all-linear", or a regex fully matching the module's name in the base model, e.g.
// "model.layers.3.self_attn.q_proj"), restricted to layers_to_transform when that is set (and
// target_modules is a list, as in PEFT).
type coverage struct {
	modules  map[string]bool // target_modules as a list (or all-linear); nil for a regex
	re       *regexp.Regexp  // target_modules as a regex
	rawRE    string
	layers   map[int]bool // layers_to_transform; nil: every layer
	rawLayer string
}

// match reports whether the projection module (under parent) of layer carries LoRA.
func (c coverage) match(layer int, parent, module string) bool {
	if c.re != nil {
		return c.re.MatchString(fmt.Sprintf("model.layers.%d.%s.%s", layer, parent, module))
	}
	return c.modules[module] && (c.layers == nil || c.layers[layer])
}

// String describes the coverage for messages.
func (c coverage) String() string {
	if c.re != nil {
		return fmt.Sprintf("target_modules regex %q", c.rawRE)
	}
	var ms []string
	for m := range c.modules {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	s := fmt.Sprintf("target_modules %v", ms)
	if c.layers != nil {
		s += ", layers_to_transform " + c.rawLayer
	}
	return s
}

// unsupportedKeys are adapter_config.json options t2m does not implement, refused when set (PEFT writes
// them as null, false or empty when unused).
var unsupportedKeys = []string{"exclude_modules", "layer_replication", "target_parameters", "trainable_token_indices",
	"use_qalora", "megatron_config"}

// parseConfig reads adapter_config.json, refusing features t2m does not implement.
func parseConfig(path string, buf []byte) (Config, coverage, error) {
	var pc peftConfig
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	if err := dec.Decode(&pc); err != nil {
		return Config{}, coverage{}, fmt.Errorf("lora: %s: %w", path, err)
	}
	bad := func(format string, a ...any) (Config, coverage, error) {
		return Config{}, coverage{}, fmt.Errorf("lora: %s: %s", path, fmt.Sprintf(format, a...))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf, &raw); err != nil {
		return bad("%v", err)
	}
	for _, k := range unsupportedKeys {
		if v, ok := raw[k]; ok {
			switch strings.TrimSpace(string(v)) {
			case "null", "false", "[]", "{}", `""`:
			default:
				var compact bytes.Buffer
				if json.Compact(&compact, v) != nil {
					compact.Reset()
					compact.Write(v)
				}
				return bad("%s = %s is not supported (t2m adapts whole q/k/v/o/gate/up/down projections only)", k, compact.String())
			}
		}
	}
	switch {
	case pc.PeftType != "LORA":
		return bad("peft_type %q, want LORA", pc.PeftType)
	case pc.R <= 0:
		return bad("r = %d", pc.R)
	case pc.Bias != "" && pc.Bias != "none":
		return bad("bias %q is not supported (want none)", pc.Bias)
	case pc.FanInFanOut:
		return bad("fan_in_fan_out is not supported")
	case pc.LoraBias:
		return bad("lora_bias is not supported")
	case pc.UseDora:
		return bad("DoRA (use_dora) is not supported")
	case len(pc.RankPattern) > 0 || len(pc.AlphaPattern) > 0:
		return bad("rank_pattern/alpha_pattern are not supported")
	case len(pc.ModulesToSave) > 0:
		return bad("modules_to_save %v is not supported", pc.ModulesToSave)
	}
	alpha, err := pc.LoraAlpha.Float64()
	if err != nil {
		return bad("lora_alpha %q: %v", pc.LoraAlpha, err)
	}
	cfg := Config{R: pc.R, Alpha: alpha, Dropout: pc.LoraDropout, RSLoRA: pc.UseRslora, BaseModel: pc.BaseModelNameOrPath}
	var cov coverage
	var list []string
	var pattern string
	if t := strings.TrimSpace(string(pc.TargetModules)); t == "" || t == "null" {
		// PEFT's default for Qwen2 (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["qwen2"]).
		pc.TargetModules = json.RawMessage(`["q_proj", "v_proj"]`)
	}
	switch {
	case json.Unmarshal(pc.TargetModules, &list) == nil && list != nil:
		cfg.Targets = list
		if err := cfg.Validate(); err != nil {
			return Config{}, coverage{}, fmt.Errorf("%w (in %s)", err, path)
		}
		cov.modules = map[string]bool{}
		for _, m := range list {
			cov.modules[m] = true
		}
	case json.Unmarshal(pc.TargetModules, &pattern) == nil && pattern == "all-linear":
		cov.modules = map[string]bool{}
		for m := range moduleParent {
			cov.modules[m] = true
		}
	case json.Unmarshal(pc.TargetModules, &pattern) == nil && pattern != "":
		re, err := regexp.Compile(`^(?:` + pattern + `)$`)
		if err != nil {
			return bad("target_modules regex %q is not supported here: %v", pattern, err)
		}
		cov.re, cov.rawRE = re, pattern
	default:
		return bad("target_modules %s: want a list of module names, \"all-linear\" or a regex", pc.TargetModules)
	}
	if cov.re == nil && pc.LayersToTransform != nil {
		layers, err := layerList(pc.LayersToTransform)
		if err != nil {
			return bad("layers_to_transform: %v", err)
		}
		cov.layers, cov.rawLayer = layers, fmt.Sprint(pc.LayersToTransform)
		switch p := pc.LayersPattern.(type) {
		case nil:
		case string:
			if p != "layers" {
				return bad("layers_pattern %q is not supported (Qwen2's layers are \"layers\")", p)
			}
		case []any:
			if len(p) != 1 || p[0] != "layers" {
				return bad("layers_pattern %v is not supported (Qwen2's layers are \"layers\")", p)
			}
		default:
			return bad("layers_pattern %v is not supported", p)
		}
	}
	if alpha == 0 {
		return bad("lora_alpha is 0")
	}
	return cfg, cov, nil
}

// layerList reads layers_to_transform: one layer index or a list of them.
func layerList(v any) (map[int]bool, error) {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	default:
		items = []any{x}
	}
	layers := map[int]bool{}
	for _, it := range items {
		n, ok := it.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%v is not a layer index", it)
		}
		i, err := strconv.Atoi(string(n))
		if err != nil || i < 0 {
			return nil, fmt.Errorf("%v is not a layer index", it)
		}
		layers[i] = true
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return layers, nil
}
