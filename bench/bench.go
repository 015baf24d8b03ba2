// Package bench times t2m's real training and generation paths — the backend and optimizer `t2m train`
// runs, the generator `t2m baseline`/`t2m eval` run, as the device registry gives them — on models of any
// shape with random NF4 weights (model.RandomNF4Weights), so no checkpoint is needed. Each configuration
// prints one JSON line, like the anchor scripts in ../shared/bench, so the two can be put side by side.
// `t2m bench train` and `t2m bench generate` call it.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// Shape is the model a benchmark runs: a registered model's config with fewer layers or a smaller
// vocabulary when set.
type Shape struct {
	Model  string // registered model name (model.Lookup), e.g. qwen2.5-coder-7b or tiny
	Layers int    // 0: the model's
	Vocab  int    // 0: the model's
	Seed   uint64
}

// weights makes the shape's random NF4 model.
func (s Shape) weights() (*model.Weights, error) {
	reg, err := model.Lookup(s.Model)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfg := reg.Config
	if s.Layers > 0 {
		cfg.NumLayers = s.Layers
	}
	if s.Vocab > 0 {
		cfg.VocabSize = s.Vocab
	}
	w, err := model.RandomNF4Weights(cfg, s.Seed)
	if err != nil {
		return nil, fmt.Errorf("bench: random %s weights: %w", s.Model, err)
	}
	return w, nil
}

// device returns the registered device, or why it cannot be used here.
func device(name string) (train.Device, string, error) {
	d, ok := train.LookupDevice(name)
	if !ok {
		if name == "cuda" {
			return d, "", train.ErrNoCUDA
		}
		return d, "", fmt.Errorf("bench: no device %q in this binary", name)
	}
	desc, err := d.Describe()
	if err != nil {
		return d, "", fmt.Errorf("bench: device %s: %w", name, err)
	}
	return d, desc, nil
}

// randomIDs returns n token ids in [0, vocab) from rng.
func randomIDs(rng *rand.Rand, n, vocab int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

// median of xs (reordered).
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// seconds is d in seconds rounded to 0.1 ms.
func seconds(d time.Duration) float64 { return float64(d.Microseconds()/100) / 1e4 }

// printJSON writes v as one JSON line.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// roundedProfile is a profile (milliseconds by kind) rounded to prec decimals, as the JSON lines carry it.
func roundedProfile(ms map[string]float64, prec int) map[string]float64 {
	f := math.Pow(10, float64(prec))
	out := make(map[string]float64, len(ms))
	for k, v := range ms {
		out[k] = math.Round(v*f) / f
	}
	return out
}

// writeProfile writes the kinds keys of a profile to w, the slowest first, one line each: the kind padded to
// width, its milliseconds with prec decimals.
func writeProfile(w io.Writer, ms map[string]float64, keys []string, width, prec int) {
	keys = slices.Clone(keys)
	sort.SliceStable(keys, func(i, j int) bool { return ms[keys[i]] > ms[keys[j]] })
	for _, k := range keys {
		fmt.Fprintf(w, "  %-*s %9.*f ms\n", width, k, prec, ms[k])
	}
}
