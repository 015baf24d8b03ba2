package pipeline

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
)

// generation is how Evaluate decodes: one generator, the tokenizer, and the limits of every split.
type generation struct {
	log    io.Writer
	gen    train.Generator
	tok    *tokenizer.Tokenizer
	maxLen int     // prompt tokens kept
	maxNew int     // new tokens per prompt at most
	batch  int     // prompts per Generate call (≤ 0: DefaultGenerationBatch)
	stops  []int32 // ids that end a generation
	// stop, when closed, makes split return errGenerationStopped before its next batch (nil: never).
	stop <-chan struct{}
}

// errGenerationStopped is split's error when g.stop was closed.
var errGenerationStopped = errors.New("generation stopped")

// stopIDs are the ids of <|im_end|> and <|endoftext|> that tok has.
func stopIDs(tok *tokenizer.Tokenizer) []int32 {
	var stops []int32
	for _, s := range []string{tokenizer.ImEnd, tokenizer.EndOfText} {
		if id, ok := tok.TokenID(s); ok {
			stops = append(stops, int32(id))
		}
	}
	return stops
}

// prompts encodes each example's ChatML prompt: [len(exs)][≤ maxLen] ids. Prompts longer than maxLen keep
// their first maxLen tokens (the original tokenized with truncation=True, max_length=512, on the right);
// cut counts them.
func (g *generation) prompts(exs []data.Example) (prompts [][]int32, cut int) {
	prompts = make([][]int32, len(exs))
	for i, ex := range exs {
		ids := g.tok.Encode(data.Prompt(ex))
		if len(ids) > g.maxLen {
			ids, cut = ids[:g.maxLen], cut+1
		}
		p := make([]int32, len(ids))
		for j, id := range ids {
			p[j] = int32(id)
		}
		prompts[i] = p
	}
	return prompts, cut
}

// split decodes every example's prompt, logging progress with an ETA, and returns the raw outputs (one per
// example, in the examples' order): the new tokens decoded without special tokens and stripped, as the
// original did. Prompts are decoded longest first in batches of g.batch, so a batch holds prompts of similar
// lengths (the GPU prefills equal lengths together) and the largest memory need comes first. On the CPU a
// prompt's output does not depend on the prompts beside it; on a GPU the bf16 products of a batch may be
// summed in another order for another batch, which can flip a greedy choice where two logits (nearly) tie.
func (g *generation) split(exs []data.Example, split string) ([]string, error) {
	prompts, cut := g.prompts(exs)
	if cut > 0 {
		fmt.Fprintf(g.log, "warning: %d of %d %s prompts are longer than --max-len %d and were cut (as the original's truncation did)\n", cut, len(exs), split, g.maxLen)
	}
	size := g.batch
	if size <= 0 {
		size = DefaultGenerationBatch
	}
	order := make([]int, len(prompts)) // example indexes, longest prompt first (stable)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(prompts[order[a]]) > len(prompts[order[b]]) })
	preds := make([]string, len(exs))
	start := time.Now()
	newTokens, done := 0, 0
	for b := 0; b < len(order); b += size {
		select {
		case <-g.stop:
			return nil, errGenerationStopped
		default:
		}
		idx := order[b:min(b+size, len(order))]
		batch := make([][]int32, len(idx)) // [≤ size][≤ maxLen]
		for k, i := range idx {
			batch[k] = prompts[i]
		}
		outs, err := g.gen.Generate(batch, model.GenerateOptions{MaxNewTokens: g.maxNew, StopIDs: g.stops})
		if err != nil {
			return nil, fmt.Errorf("examples %v: %w", idx, err)
		}
		for k, o := range outs { // o: [≤ maxNew] new ids
			ids := make([]int, len(o))
			for j, id := range o {
				ids[j] = int(id)
			}
			newTokens += len(o)
			preds[idx[k]] = strings.TrimSpace(g.tok.DecodeSkipSpecial(ids))
		}
		done += len(idx)
		el := time.Since(start)
		eta := time.Duration(float64(el) / float64(done) * float64(len(prompts)-done))
		fmt.Fprintf(g.log, "generating %s: %d/%d prompts  %.1f new tok/s  elapsed %s  ETA %s\n", split, done, len(prompts),
			float64(newTokens)/el.Seconds(), el.Round(time.Second), eta.Round(time.Second))
	}
	return preds, nil
}
