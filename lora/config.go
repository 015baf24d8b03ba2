package lora

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// DefaultTargets are the projections adapted unless Config.Targets says otherwise
// (QLoRA's attention + gate/up; down_proj is optional).
var DefaultTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"}

// AllTargets are the projections of a Qwen2 layer that can carry LoRA, in the layer's order: the accepted
// values of Config.Targets (t2m's --target-modules).
var AllTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// moduleParent places each Qwen2 projection in its layer: self_attn or mlp.
var moduleParent = map[string]string{
	"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
	"gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp",
}

// Config is a LoRA configuration. Zero values take defaults: Alpha 0 → 2·R, Targets
// nil → DefaultTargets.
type Config struct {
	R         int      // rank
	Alpha     float64  // lora_alpha
	Dropout   float64  // dropout on the LoRA input, training only
	Targets   []string // short module names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
	RSLoRA    bool     // scale by alpha/√r instead of alpha/r
	BaseModel string   // base_model_name_or_path written to adapter_config.json
}

// WithDefaults fills Alpha and Targets and sorts the targets.
func (c Config) WithDefaults() Config {
	if c.Alpha == 0 {
		c.Alpha = 2 * float64(c.R)
	}
	if len(c.Targets) == 0 {
		c.Targets = DefaultTargets
	}
	c.Targets = slices.Clone(c.Targets)
	slices.Sort(c.Targets)
	c.Targets = slices.Compact(c.Targets)
	return c
}

// Validate checks the configuration (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.R <= 0 {
		return fmt.Errorf("lora: rank r must be positive, got %d", c.R)
	}
	if c.Alpha < 0 || math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) {
		return fmt.Errorf("lora: bad alpha %v", c.Alpha)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return fmt.Errorf("lora: dropout must be in [0, 1), got %v", c.Dropout)
	}
	for _, t := range c.Targets {
		if _, ok := moduleParent[t]; !ok {
			return fmt.Errorf("lora: unknown target module %q (want some of %s)", t, strings.Join(AllTargets, ", "))
		}
	}
	return nil
}

// ParseTargets reads a comma-separated list of projections ("q_proj,v_proj"; spaces around names are
// ignored), as --target-modules takes it. It returns them sorted and without repeats (Config's order); an
// empty list or a name outside AllTargets is an error naming it and the accepted names.
func ParseTargets(list string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if _, ok := moduleParent[t]; !ok {
			return nil, fmt.Errorf("unknown target module %q: accepted are %s", t, strings.Join(AllTargets, ", "))
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no target module in %q: give one or more of %s, separated by commas", list, strings.Join(AllTargets, ", "))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Scaling is the factor of the LoRA branch: alpha/r, or alpha/√r with rsLoRA (Alpha 0
// meaning 2r).
func (c Config) Scaling() float64 {
	c = c.WithDefaults()
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

// ModulePath is PEFT's name of a projection of a layer, e.g.
// "base_model.model.model.layers.3.self_attn.q_proj" or "...layers.3.mlp.up_proj".
func ModulePath(layer int, module string) (string, error) {
	parent, ok := moduleParent[module]
	if !ok {
		return "", fmt.Errorf("lora: unknown module %q", module)
	}
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.%s", layer, parent, module), nil
}
