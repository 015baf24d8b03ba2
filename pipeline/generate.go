package pipeline

import (
	"errors"
	"fmt"
	"io"
	"slices"
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
	batch  int     // sequences decoded together, the generator's slots (≤ 0: DefaultGenerationBatch)
	stops  []int32 // ids that end a generation
	// stop, when closed, makes split return errGenerationStopped before its next batch (nil: never).
	stop <-chan struct{}
	// group, with more than one rank, shares the chunks among the ranks (chunk c on rank c mod Size) and
	// gathers every output on every rank.
	group train.Collective
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

// generationChunk is how many generation batches of prompts one Generate call of a sharded evaluation
// decodes (continuous batching within it); the ranks meet between chunks. One device decodes a whole split in
// one call, so its slots stay full until the split's last prompts (Ctrl-C is looked at between steps).
const generationChunk = 8

// split decodes every example's prompt, logging progress with an ETA, and returns the raw outputs (one per
// example, in the examples' order): the new tokens decoded without special tokens and stripped, as the
// original did. Prompts are decoded in the order of their token ids (lexicographic), so that prompts sharing
// a prefix (the system prompt, then a collection's schema) are decoded next to one another and a GPU prefill
// computes that prefix once (gpu: prefix reuse); in one Generate call per split on one device, or in chunks of
// generationChunk × g.batch prompts (at most an even share of the ranks') on several, each call
// that keeps g.batch sequences decoding at once: when one ends, the next prompt takes its slot
// (continuous batching). On the CPU a prompt's output does not depend on the prompts beside it; on a GPU
// the bf16 products of a step may be summed in another order for other rows, which can flip a greedy
// choice where two logits (nearly) tie.
func (g *generation) split(exs []data.Example, split string) ([]string, error) {
	prompts, cut := g.prompts(exs)
	if cut > 0 {
		fmt.Fprintf(g.log, "warning: %d of %d %s prompts are longer than --max-len %d and were cut (as the original's truncation did)\n", cut, len(exs), split, g.maxLen)
	}
	slots := g.batch
	if slots <= 0 {
		slots = DefaultGenerationBatch
	}
	rank, world := train.RankOf(g.group)
	size := max(1, len(prompts)) // prompts per chunk: one device decodes them all in one call
	if world > 1 {
		size = min(slots*generationChunk, max(1, (len(prompts)+world-1)/world))
	}
	order := make([]int, len(prompts)) // example indexes, prompts in lexicographic order of their ids (stable)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return slices.Compare(prompts[a], prompts[b]) })
	outputs := make([][]int32, len(exs)) // [example][≤ maxNew] new ids
	start := time.Now()
	mine, of := len(order), "" // this rank's prompts
	if world > 1 {
		mine = 0
		for b := rank * size; b < len(order); b += world * size {
			mine += min(size, len(order)-b)
		}
		of = fmt.Sprintf(" (rank %d of %d)", rank, world)
	}
	newTokens, done := 0, 0
	// report logs the progress after done prompts and newTokens tokens.
	report := func(done, newTokens int) {
		el := time.Since(start)
		eta := time.Duration(float64(el) / float64(done) * float64(mine-done))
		fmt.Fprintf(g.log, "generating %s%s: %d/%d prompts  %.1f new tok/s  elapsed %s  ETA %s\n", split, of, done, mine,
			float64(newTokens)/el.Seconds(), el.Round(time.Second), eta.Round(time.Second))
	}
	// Round by round: in each, rank r decodes chunk round×world + r (if there is one). Before each round,
	// and once after the last, the ranks agree whether to stop, so that a rank interrupted inside its chunk
	// does not leave the others waiting for its outputs.
	interrupted := false // this rank's Generate call stopped on g.stop
	for round := 0; ; round++ {
		stopped := interrupted
		select {
		case <-g.stop:
			stopped = true
		default:
		}
		if world > 1 { // stop together: a rank that went on alone would wait for the others' outputs
			flag := []float32{0}
			if stopped {
				flag[0] = 1
			}
			if err := g.group.AllReduceSum([][]float32{flag}); err != nil {
				return nil, fmt.Errorf("rank %d of %d: %w", rank, world, err)
			}
			stopped = flag[0] > 0
		}
		if stopped {
			return nil, errGenerationStopped
		}
		if round*world*size >= len(order) {
			break
		}
		b := (round*world + rank) * size
		if b >= len(order) {
			continue // no chunk for this rank in the last round
		}
		idx := order[b:min(b+size, len(order))]
		chunk := make([][]int32, len(idx)) // [≤ size][≤ maxLen]
		for k, i := range idx {
			chunk[k] = prompts[i]
		}
		base, baseTokens := done, newTokens
		progress := func(n, tokens int, _ time.Duration) { // every slots-th prompt of the chunk
			if n%slots == 0 && n < len(idx) {
				report(base+n, baseTokens+tokens)
			}
		}
		outs, err := g.gen.Generate(chunk, model.GenerateOptions{MaxNewTokens: g.maxNew, StopIDs: g.stops, Slots: slots,
			Progress: progress, Stop: g.stop})
		if errors.Is(err, model.ErrStopped) {
			interrupted = true
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("examples %v: %w", idx, err)
		}
		for k, o := range outs {
			outputs[idx[k]] = o
			newTokens += len(o)
		}
		done += len(idx)
		report(done, newTokens)
	}
	if world > 1 {
		if err := gatherOutputs(g.group, outputs, g.maxNew); err != nil {
			return nil, err
		}
	}
	preds := make([]string, len(exs))
	for i, o := range outputs {
		ids := make([]int, len(o))
		for j, id := range o {
			ids[j] = int(id)
		}
		preds[i] = strings.TrimSpace(g.tok.DecodeSkipSpecial(ids))
	}
	return preds, nil
}

// gatherOutputs gives every rank the outputs of all ranks (each rank filled its own examples' slots and
// left the others nil): one all-reduce of a [len(outputs)][1 + maxNew] float32 table in which a rank writes
// 1 + the output's length and its ids in its examples' rows and zeros elsewhere. Token ids are below 2^24,
// so float32 holds them exactly.
func gatherOutputs(group train.Collective, outputs [][]int32, maxNew int) error {
	row := 1 + maxNew
	table := make([]float32, len(outputs)*row)
	for i, o := range outputs {
		if o == nil {
			continue
		}
		if len(o) > maxNew {
			return fmt.Errorf("gathering outputs: example %d has %d new tokens, more than --max-new-tokens %d", i, len(o), maxNew)
		}
		table[i*row] = float32(1 + len(o))
		for j, id := range o {
			table[i*row+1+j] = float32(id)
		}
	}
	if err := group.AllReduceSum([][]float32{table}); err != nil {
		return fmt.Errorf("gathering outputs from %d ranks: %w", group.Size(), err)
	}
	for i := range outputs {
		n := int(table[i*row]) - 1
		if n < 0 || n > maxNew {
			return fmt.Errorf("gathering outputs: example %d came back from no rank (or from several)", i)
		}
		o := make([]int32, n)
		for j := range o {
			o[j] = int32(table[i*row+1+j])
		}
		outputs[i] = o
	}
	return nil
}
