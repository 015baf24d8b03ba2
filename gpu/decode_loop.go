package gpu

import (
	"fmt"
	"time"

	"github.com/t2m/t2m/model"
)

// decodeSteps is what greedy decoding needs from an executor: the GPU decoder implements it, and the
// default build's test runs generateGreedy over model.Generator through it, so the loop (stop ids, the
// token budget, which sequences are still live) is checked against model.Generator.Generate without a GPU.
type decodeSteps interface {
	// begin makes room for seqs sequences (slots 0..seqs−1) of up to capacity tokens each.
	begin(seqs, capacity int) error
	// prefill caches each prompt in the slot of its index and returns each one's greedy next token.
	prefill(prompts [][]int32) ([]int32, error)
	// step appends token ids[r] at position pos[r] to slot seqs[r]'s cache, for all rows together, and
	// returns each row's greedy next token.
	step(seqs, ids, pos []int32) ([]int32, error)
	// end releases what begin took.
	end()
}

// generateGreedy is model.Generator.Generate over any decodeSteps: the same stop rules (a sequence ends
// after emitting a stop id, which is not included, or after maxNew tokens), the same Progress calls.
func generateGreedy(s decodeSteps, prompts [][]int32, opt model.GenerateOptions) ([][]int32, error) {
	maxNew := opt.MaxNewTokens
	if maxNew <= 0 {
		maxNew = model.DefaultMaxNewTokens
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
	start := time.Now()
	// A sequence takes its prompt and at most maxNew−1 fed-back tokens: the last one is never fed.
	if err := s.begin(len(prompts), longest+maxNew); err != nil {
		return nil, err
	}
	defer s.end()
	next, err := s.prefill(prompts)
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
		got, err := s.step(seqs, ids, pos)
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
