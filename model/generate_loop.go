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
	// Prefill caches prompts[i] in slot slots[i] (replacing what the slot held) and returns each one's
	// greedy next token.
	Prefill(slots []int32, prompts [][]int32) ([]int32, error)
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
//
// Batching is continuous: at most opt.Slots sequences decode together (all prompts when Slots ≤ 0); when
// one ends, the next waiting prompt (in the given order) is prefilled into its slot and joins the next
// step, so the steps stay full until the prompts run out. A sequence's tokens depend only on its prompt
// (each slot has its own cache and every row is computed on its own), not on which sequences share its
// steps — exactly on the CPU; on a GPU up to the summation order of the batch's products.
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
	slots := len(prompts)
	if opt.Slots > 0 {
		slots = min(slots, opt.Slots)
	}
	pick, err := newPicker(s, opt.Sampling) // nil: greedy, through Prefill and Step as they are
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// A sequence takes its prompt and at most maxNew−1 fed-back tokens: the last one is never fed.
	if err := s.Begin(slots, longest+maxNew); err != nil {
		return nil, err
	}
	defer s.End()
	out := make([][]int32, len(prompts))
	next := make([]int32, len(prompts))   // each prompt's token not yet judged
	lens := make([]int32, len(prompts))   // tokens in each prompt's cache
	slotOf := make([]int32, len(prompts)) // the slot each prompt decodes in
	free := make([]int32, 0, slots)       // slots without a sequence
	for k := range slots {
		free = append(free, int32(k))
	}
	waiting, done, emitted := 0, 0, 0 // prompts[waiting:] have not started; emitted: new tokens so far
	var fresh, running []int          // sequences with a next token to judge; sequences to step
	for {
		select {
		case <-opt.Stop:
			return nil, ErrStopped
		default:
		}
		// Start waiting prompts in the free slots.
		if n := min(len(free), len(prompts)-waiting); n > 0 {
			idx := make([]int, n)
			for k := range idx {
				idx[k] = waiting + k
				slotOf[waiting+k] = free[k]
				lens[waiting+k] = int32(len(prompts[waiting+k]))
			}
			got, err := pick.prefill(s, free[:n], prompts[waiting:waiting+n])
			if err != nil {
				return nil, err
			}
			copy(next[waiting:], got)
			free = free[n:]
			waiting += n
			fresh = append(fresh, idx...)
		}
		before := done
		for _, i := range fresh {
			switch {
			case stop[next[i]]:
				done++
				free = append(free, slotOf[i])
			case len(out[i])+1 >= maxNew:
				out[i] = append(out[i], next[i])
				done, emitted = done+1, emitted+1
				free = append(free, slotOf[i])
			default:
				out[i] = append(out[i], next[i])
				emitted++
				running = append(running, i)
			}
		}
		fresh = fresh[:0]
		if done > before && opt.Progress != nil {
			opt.Progress(done, emitted, time.Since(start))
		}
		if len(free) > 0 && waiting < len(prompts) {
			continue // fill the freed slots before the next step
		}
		if len(running) == 0 {
			return out, nil
		}
		seqs, ids, pos := make([]int32, len(running)), make([]int32, len(running)), make([]int32, len(running))
		for r, i := range running {
			seqs[r], ids[r], pos[r] = slotOf[i], next[i], lens[i]
		}
		got, err := pick.step(s, seqs, ids, pos)
		if err != nil {
			return nil, err
		}
		for r, i := range running {
			next[i] = got[r]
			lens[i]++
		}
		fresh, running = running, fresh[:0]
	}
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

func (c *cpuSteps) Prefill(slots []int32, prompts [][]int32) ([]int32, error) {
	logits, err := c.PrefillLogits(slots, prompts) // [n, V]
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
