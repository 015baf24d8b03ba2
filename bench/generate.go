package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// GenerateOptions configure the generation benchmark, the anchor's workload: Batches prompts of Prompt random
// tokens each, exactly New new tokens (no stop ids), greedy; one untimed generation first, then Repeats timed.
type GenerateOptions struct {
	Shape
	Device  string
	Batches []int
	Prompt  int
	New     int
	Repeats int
	// LoRARank, when > 0, gives every projection a random adapter of that rank (as `t2m eval` of a trained
	// checkpoint has).
	LoRARank int
	// Profile adds one generation per batch size after the timed ones with each op of the decode steps
	// timed on the device (LaunchProfiler generators: the GPU's), reported per step by kind of op.
	Profile bool
	Log     io.Writer
}

// GenerateResult is one batch size's measurement (printed as one JSON line).
type GenerateResult struct {
	System   string  `json:"system"`
	Device   string  `json:"gpu"`
	Model    string  `json:"model"`
	Layers   int     `json:"layers"`
	Batch    int     `json:"batch"`
	Prompt   int     `json:"prompt"`
	New      int     `json:"new"`
	S        float64 `json:"s"`             // median wall time of one whole generation (prefill + New steps)
	NewTokPS float64 `json:"new_tok_per_s"` // Batch·New / S
	Holds    string  `json:"weights"`       // how the generator holds the weights
	LoadS    float64 `json:"load_s"`        // making the generator (upload, dequantization)
	// FirstTokenS is the median wall time of the same prompts generating one new token each: the prefill
	// and its argmax (time to first token).
	FirstTokenS float64 `json:"first_token_s"`
	// StepMs is the rest of a generation per later token, 1000·(S − FirstTokenS)/(New − 1): one decode step
	// of Batch rows, with its launches and the host's work (0 when New is 1).
	StepMs float64 `json:"step_ms"`
	// StepProfileMs: device milliseconds of one decode step by kind of op (GenerateOptions.Profile).
	StepProfileMs map[string]float64 `json:"step_profile_ms,omitempty"`
}

// Generate times greedy generation on the device's generator (the one `t2m eval` makes for that device)
// and prints one JSON line per batch size to out.
func Generate(o GenerateOptions, out io.Writer) ([]GenerateResult, error) {
	if len(o.Batches) == 0 || o.Prompt < 1 || o.New < 1 || o.Repeats < 1 {
		return nil, fmt.Errorf("bench generate: batch sizes, prompt, new and repeats must be ≥ 1")
	}
	dev, desc, err := device(o.Device)
	if err != nil {
		return nil, err
	}
	w, err := o.weights()
	if err != nil {
		return nil, err
	}
	rank := o.LoRARank
	if rank < 0 {
		return nil, fmt.Errorf("bench generate: LoRA rank %d: want ≥ 0 (0: no adapter)", rank)
	}
	var lp *model.LoRAParams
	if rank > 0 {
		lp = model.RandomLoRA(w, rank, 0.02, rand.New(rand.NewPCG(o.Seed, 3)).NormFloat64)
	}
	t0 := time.Now()
	gen, err := dev.NewGenerator(w, lp)
	if err != nil {
		return nil, fmt.Errorf("bench generate: %w", err)
	}
	defer gen.Close()
	load := time.Since(t0)
	holds := gen.Describe()
	prof, canProfile := gen.(LaunchProfiler)
	if o.Profile && !canProfile {
		return nil, fmt.Errorf("bench generate: the %s generator cannot time its steps (--profile needs --device cuda)", o.Device)
	}
	if rank > 0 {
		holds += fmt.Sprintf(" (random LoRA of rank %d on every projection)", rank)
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench generate: %s, %d layers, loaded in %s: %s\n", o.Model, w.Config.NumLayers, load.Round(time.Millisecond), holds)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 2))
	var rs []GenerateResult
	for _, b := range o.Batches {
		if b < 1 {
			return nil, fmt.Errorf("bench generate: batch size %d", b)
		}
		prompts := make([][]int32, b)
		for i := range prompts {
			prompts[i] = randomIDs(rng, o.Prompt, w.Config.VocabSize)
		}
		s, err := timeGenerations(gen, prompts, o.New, 1, o.Repeats) // the first one warms up (graphs, caches)
		if err != nil {
			return nil, fmt.Errorf("bench generate: batch %d: %w", b, err)
		}
		first, err := timeGenerations(gen, prompts, 1, 0, o.Repeats)
		if err != nil {
			return nil, fmt.Errorf("bench generate: batch %d, first token: %w", b, err)
		}
		r := GenerateResult{System: "t2m-generate-" + o.Device, Device: desc, Model: o.Model, Layers: w.Config.NumLayers,
			Batch: b, Prompt: o.Prompt, New: o.New, S: round4(s), NewTokPS: round1(float64(b*o.New) / s), Holds: holds,
			LoadS: seconds(load), FirstTokenS: round4(first)}
		if o.New > 1 {
			r.StepMs = round4(1000 * max(s-first, 0) / float64(o.New-1))
		}
		if o.Profile {
			if r.StepProfileMs, err = profileSteps(gen, prof, prompts, o); err != nil {
				return nil, err
			}
		}
		if err := printJSON(out, r); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// timeGenerations runs warm untimed and then repeats timed generations of exactly newTokens tokens per
// prompt, and returns the median wall time in seconds.
func timeGenerations(gen train.Generator, prompts [][]int32, newTokens, warm, repeats int) (float64, error) {
	var ts []float64
	for rep := range warm + repeats {
		t0 := time.Now()
		outs, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: newTokens})
		if err != nil {
			return 0, err
		}
		for i, o := range outs {
			if len(o) != newTokens {
				return 0, fmt.Errorf("prompt %d got %d new tokens, want %d", i, len(o), newTokens)
			}
		}
		if rep >= warm {
			ts = append(ts, time.Since(t0).Seconds())
		}
	}
	return median(ts), nil
}

// profileSteps runs one more generation of prompts with the generator's step profiler on and returns a
// decode step's device milliseconds by kind of op (rounded to 0.001 ms); the profile also goes to o.Log as a
// table.
func profileSteps(gen train.Generator, p LaunchProfiler, prompts [][]int32, o GenerateOptions) (map[string]float64, error) {
	p.SetProfile(true)
	defer p.SetProfile(false)
	if _, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: o.New}); err != nil {
		return nil, fmt.Errorf("bench generate: profiled batch %d: %w", len(prompts), err)
	}
	ms, steps := p.Profile()
	if steps != o.New-1 {
		return nil, fmt.Errorf("bench generate: the profiler saw %d steps, want %d", steps, o.New-1)
	}
	if o.Log != nil {
		var keys []string
		sum := 0.0
		for k, v := range ms {
			if k != "step span" {
				keys, sum = append(keys, k), sum+v
			}
		}
		fmt.Fprintf(o.Log, "bench generate: one decode step of %d rows on the device, by kind of op (%d steps):\n", len(prompts), steps)
		writeProfile(o.Log, ms, keys, 12, 3)
		fmt.Fprintf(o.Log, "  ops %.3f ms of a %.3f ms span (the rest: gaps between launches, profiled eagerly)\n", sum, ms["step span"])
	}
	return roundedProfile(ms, 3), nil
}
