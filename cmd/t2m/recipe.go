package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// A recipe file (`t2m train --config recipe.yaml`) holds values of train's flags under their names
// (lora-r: 16, lr-scheduler: linear, target-modules: [q_proj, v_proj], ...). urfave/cli's altsrc applies
// them: a value in the file becomes the flag's value unless the flag is given on the command line, so
// flags override the recipe. Before altsrc sees the file, readRecipe checks every key against the
// command's flags (an unknown key is an error naming it and the accepted ones) and brings each value to
// its flag's type, so that `weight-decay: 0` (a YAML integer) or a TOML integer is accepted where a
// float or int flag wants it, and a list of target modules where a comma-separated string is expected.

// recipeFlags wraps flags for altsrc: each then takes its value from a recipe file when not given on the
// command line. Flags of other types are returned unchanged (and are not accepted in a recipe).
func recipeFlags(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			out[i] = altsrc.NewStringFlag(f)
		case *cli.IntFlag:
			out[i] = altsrc.NewIntFlag(f)
		case *cli.Float64Flag:
			out[i] = altsrc.NewFloat64Flag(f)
		case *cli.BoolFlag:
			out[i] = altsrc.NewBoolFlag(f)
		default:
			out[i] = f
		}
	}
	return out
}

// applyRecipe is train's Before: with --config FILE, the file's values become those of the flags not
// given on the command line (altsrc.ApplyInputSourceValues).
func applyRecipe(c *cli.Context) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	values, err := readRecipe(path, c.Command.Flags)
	if err != nil {
		return fmt.Errorf("train: --config %s: %w", path, err)
	}
	if err := altsrc.ApplyInputSourceValues(c, altsrc.NewMapInputSource(path, values), c.Command.Flags); err != nil {
		return fmt.Errorf("train: --config %s: %w", path, err)
	}
	return nil
}

// recipeKeys are the flags a recipe may set, by name: those wrapped by recipeFlags and not hidden.
func recipeKeys(flags []cli.Flag) map[string]cli.Flag {
	keys := map[string]cli.Flag{}
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); !ok {
			continue
		}
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		keys[f.Names()[0]] = f
	}
	return keys
}

// readRecipe reads a recipe file (.yaml, .yml, .json: YAML; .toml: TOML) into the map altsrc reads, each
// key one of the flags recipeKeys accepts and each value of its flag's type.
func readRecipe(path string, flags []cli.Flag) (map[any]any, error) {
	ext := strings.ToLower(filepath.Ext(path))
	unmarshal := map[string]func([]byte, any) error{".yaml": yaml.Unmarshal, ".yml": yaml.Unmarshal, ".json": yaml.Unmarshal,
		".toml": toml.Unmarshal}[ext]
	if unmarshal == nil {
		return nil, fmt.Errorf("unknown recipe format %q: want a .yaml, .yml, .json or .toml file", ext)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a valid recipe file: %w", err)
	}
	keys := recipeKeys(flags)
	accepted := make([]string, 0, len(keys))
	for k := range keys {
		accepted = append(accepted, k)
	}
	slices.Sort(accepted)
	names := make([]string, 0, len(doc))
	for k := range doc {
		names = append(names, k)
	}
	slices.Sort(names) // the first bad key in the file's sorted order: the same message every time
	values := map[any]any{}
	for _, k := range names {
		f, ok := keys[k]
		if !ok {
			hint := ""
			if _, ok := keys[strings.ReplaceAll(k, "_", "-")]; ok {
				hint = fmt.Sprintf(" (did you mean %q? keys are the flags' names)", strings.ReplaceAll(k, "_", "-"))
			} else if k == "config" || k == "resume" {
				hint = " (--" + k + " is given on the command line only)"
			}
			return nil, fmt.Errorf("unknown key %q%s; accepted keys: %s", k, hint, strings.Join(accepted, ", "))
		}
		v, err := recipeValue(f, doc[k])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		values[k] = v
	}
	return values, nil
}

// recipeValue converts a decoded YAML/TOML value to what altsrc expects for f: int, float64, string or
// bool. Whole numbers serve float flags and integral floats int flags; a list of strings serves a string
// flag as its comma-separated join (--target-modules).
func recipeValue(f cli.Flag, v any) (any, error) {
	if v == nil {
		return nil, fmt.Errorf("has no value")
	}
	switch f.(type) {
	case *altsrc.IntFlag:
		switch x := v.(type) {
		case int:
			return x, nil
		case int64:
			if x == int64(int(x)) {
				return int(x), nil
			}
		case uint64:
			if x <= math.MaxInt {
				return int(x), nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
				return int(x), nil
			}
		}
		return nil, fmt.Errorf("%v is not a whole number", v)
	case *altsrc.Float64Flag:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case uint64:
			return float64(x), nil
		}
		return nil, fmt.Errorf("%v is not a number", v)
	case *altsrc.BoolFlag:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%v is not true or false", v)
	case *altsrc.StringFlag:
		switch x := v.(type) {
		case string:
			return x, nil
		case []any:
			parts := make([]string, len(x))
			for i, it := range x {
				s, ok := it.(string)
				if !ok {
					return nil, fmt.Errorf("item %d (%v) is not a string", i+1, it)
				}
				parts[i] = s
			}
			return strings.Join(parts, ","), nil
		}
		return nil, fmt.Errorf("%v is not a string", v)
	}
	return nil, fmt.Errorf("cannot be set in a recipe")
}
