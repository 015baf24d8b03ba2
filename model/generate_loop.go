package model

import (
	"fmt"
	"time"
)

// DecodeSteps is what greedy decoding needs from an executor (sampling needs LogitsSteps too). The CPU
// generator (cpuSteps over Generator.Prefill/Step) and the GPU decoder (gpu/) implement it, so both run
// GenerateGreedy's loop.
type DecodeSteps interface {
	// Begin makes room for seqs sequences (slots 0..seqs−1) of up to capacity tokens each.
	Begin(seqs, capacity int) error
	// Prefill caches each prompt in the slot of its index and returns each one's greedy next token.
	Prefill(prompts [][]int32) ([]int32, error)
	// Step appends token ids[r] at position pos[r] to slot seqs[r]'s cache, for all rows together, and
	// returns each row's greedy next token.
	Step(seqs, ids, pos []int32) ([]int32, error)
	// End releases what Begin took.
	End()
}

// GenerateGreedy decodes greedily over any DecodeSteps: a sequence ends after emitting a stop id (not
// included in its output) or after maxNew tokens; Progress is called as prompts finish. It returns the new
// tokens of each prompt. With opt.Sampling (Temperature > 0) each token is drawn from the logits rows of
// s's LogitsSteps instead (see Sampling); without it the argmax path is untouched.
func GenerateGreedy(s DecodeSteps, prompts [][]int32, opt GenerateOptions) ([][]int32, error) {
	maxNew := opt.MaxNewTokens
	if maxNew <= 0 {
		maxNew = DefaultMaxNewTokens
	}
	stop := make(map[int32]bool, len(opt.StopIDs))
	for _, id := range opt.StopIDs {
		stop[id] = true
	}
	if len(prompts) == 0 {
		return nil, nil
	}
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("prompt %d: generator: empty prompt", i)
		}
		longest = max(longest, len(p))
	}
	pick, err := newPicker(s, opt.Sampling) // nil: greedy, through Prefill and Step as they are
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// A sequence takes its prompt and at most maxNew−1 fed-back tokens: the last one is never fed.
	if err := s.Begin(len(prompts), longest+maxNew); err != nil {
		return nil, err
	}
	defer s.End()
	next, err := pick.prefill(s, prompts)
	if err != nil {
		return nil, err
	}
	lens := make([]int32, len(prompts)) // tokens in each cache
	for i, p := range prompts {
		lens[i] = int32(len(p))
	}
	out := make([][]int32, len(prompts))
	done := 0
	active := make([]int, len(prompts)) // prompts still generating
	for i := range active {
		active[i] = i
	}
	for len(active) > 0 {
		var still []int
		before := done
		for _, i := range active {
			switch {
			case stop[next[i]]:
				done++
			case len(out[i])+1 >= maxNew:
				out[i] = append(out[i], next[i])
				done++
			default:
				out[i] = append(out[i], next[i])
				still = append(still, i)
			}
		}
		if done > before && opt.Progress != nil {
			opt.Progress(done, time.Since(start))
		}
		active = still
		if len(active) == 0 {
			break
		}
		seqs, ids, pos := make([]int32, len(active)), make([]int32, len(active)), make([]int32, len(active))
		for r, i := range active {
			seqs[r], ids[r], pos[r] = int32(i), next[i], lens[i]
		}
		got, err := pick.step(s, seqs, ids, pos)
		if err != nil {
			return nil, err
		}
		for r, i := range active {
			next[i] = got[r]
			lens[i]++
		}
	}
	return out, nil
}

// cpuSteps is DecodeSteps over Generator.Prefill and Generator.Step.
type cpuSteps struct {
	g        *Generator
	caches   []*KVCache
	capacity int
}

func (c *cpuSteps) Begin(seqs, capacity int) error {
	c.caches, c.capacity = make([]*KVCache, seqs), capacity
	return nil
}

func (c *cpuSteps) Prefill(prompts [][]int32) ([]int32, error) {
	logits, err := c.PrefillLogits(prompts) // [n, V]
	if err != nil {
		return nil, err
	}
	return argmaxRows(logits, len(prompts)), nil
}

func (c *cpuSteps) Step(seqs, ids, pos []int32) ([]int32, error) {
	logits, err := c.StepLogits(seqs, ids, pos) // [rows, V]
	if err != nil {
		return nil, err
	}
	return argmaxRows(logits, len(seqs)), nil
}

// argmaxRows is Argmax of each of the n rows of logits [n, V].
func argmaxRows(logits []float32, n int) []int32 {
	V := len(logits) / n
	next := make([]int32, n)
	for r := range next {
		next[r] = Argmax(logits[r*V : (r+1)*V])
	}
	return next
}

func (c *cpuSteps) End() { c.caches = nil }
