package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// IgnoreIndex is the label of positions that carry no loss (PyTorch's ignore_index).
const IgnoreIndex = -100

// DefaultMaxLen is the default --max-len: the longest training sequence, in tokens.
const DefaultMaxLen = 512

// Encoder turns text into token ids; tokenizer.Tokenizer implements it.
type Encoder interface {
	Encode(text string) []int
}

// Sequence is one tokenized training example.
//
// The prompt and the completion are encoded separately and concatenated (not the joined
// text encoded once): the split between "no loss" and "loss" positions is then exact by
// construction, which is what TRL's completion-only training computes. For Qwen2 the two
// agree anyway, because the prompt ends with "\n" after "assistant" and a pre-token never
// spans that boundary.
type Sequence struct {
	IDs       []int32 // [T] prompt ids then completion ids, T <= max-len
	PromptLen int     // IDs[:PromptLen] are the prompt: no loss there
	Example   int     // index of the example in the slice given to Tokenize
}

// Labels returns the training targets of s: IgnoreIndex on the prompt, the token id itself
// on the completion. As in Hugging Face causal LMs the labels are not shifted; the loss
// compares the logits at t-1 with the label at t.
func (s Sequence) Labels() []int32 {
	labels := make([]int32, len(s.IDs)) // [T]
	for t, id := range s.IDs {
		if t < s.PromptLen {
			labels[t] = IgnoreIndex
		} else {
			labels[t] = id
		}
	}
	return labels
}

// TokenizeStats counts what truncation did.
type TokenizeStats struct {
	Kept      int // sequences returned
	Truncated int // kept, but the completion lost its tail to max-len
	Dropped   int // the prompt alone filled max-len: no completion token left, not returned
}

// Tokenize renders and encodes every example: Prompt(ex) and Completion(ex) separately,
// concatenated, cut from the right to maxLen tokens. An example whose completion is cut
// entirely carries no loss and is dropped (counted in the stats).
func Tokenize(enc Encoder, exs []Example, maxLen int) ([]Sequence, TokenizeStats, error) {
	var st TokenizeStats
	if maxLen < 2 {
		return nil, st, fmt.Errorf("tokenize: max-len %d is too small (it must leave room for prompt and completion; default %d)", maxLen, DefaultMaxLen)
	}
	seqs := make([]Sequence, 0, len(exs))
	for i, ex := range exs {
		completion, err := Completion(ex)
		if err != nil {
			return nil, st, fmt.Errorf("tokenize example %d: %w", i, err)
		}
		p := enc.Encode(Prompt(ex))
		c := enc.Encode(completion)
		if len(p) >= maxLen {
			st.Dropped++
			continue
		}
		if len(p)+len(c) > maxLen {
			st.Truncated++
			c = c[:maxLen-len(p)]
		}
		ids := make([]int32, 0, len(p)+len(c)) // [T]
		for _, part := range [][]int{p, c} {
			for _, id := range part {
				if id < 0 || id > math.MaxInt32 {
					return nil, st, fmt.Errorf("tokenize example %d: token id %d out of range (the tokenizer is broken)", i, id)
				}
				ids = append(ids, int32(id))
			}
		}
		seqs = append(seqs, Sequence{IDs: ids, PromptLen: len(p), Example: i})
	}
	st.Kept = len(seqs)
	return seqs, st, nil
}

// Batch is one micro-batch of right-padded sequences.
type Batch struct {
	IDs      [][]int32 // [B][T] token ids, padding = the pad id
	Labels   [][]int32 // [B][T] token id on completion positions, IgnoreIndex on prompt and padding
	Mask     [][]int32 // [B][T] attention mask: 1 on real tokens, 0 on padding
	Examples []int     // [B] Sequence.Example of each row
}

// BatchOptions says how Batches groups sequences.
type BatchOptions struct {
	Size  int    // sequences per micro-batch (the last one may be smaller)
	PadID int32  // id written into padding positions (masked, no loss)
	PadTo int    // T of every batch; 0 pads each batch to its longest sequence
	Seed  uint64 // shuffling seed; use a different seed per epoch (e.g. seed+epoch)
}

// Shuffle returns a permutation of 0..n-1 that depends only on seed (math/rand/v2 PCG
// seeded with (seed, seed)), so the same seed gives the same order on every machine.
func Shuffle(n int, seed uint64) []int {
	return rand.New(rand.NewPCG(seed, seed)).Perm(n)
}

// Batches shuffles seqs by opt.Seed and groups them into micro-batches of opt.Size rows,
// each padded on the right to a common length.
func Batches(seqs []Sequence, opt BatchOptions) ([]Batch, error) {
	if opt.Size < 1 {
		return nil, fmt.Errorf("batches: batch size %d must be at least 1", opt.Size)
	}
	order := Shuffle(len(seqs), opt.Seed)
	var out []Batch
	for start := 0; start < len(order); start += opt.Size {
		end := min(start+opt.Size, len(order))
		rows := order[start:end]
		T := opt.PadTo
		if T == 0 {
			for _, r := range rows {
				T = max(T, len(seqs[r].IDs))
			}
		}
		b := Batch{
			IDs:      make([][]int32, len(rows)),
			Labels:   make([][]int32, len(rows)),
			Mask:     make([][]int32, len(rows)),
			Examples: make([]int, len(rows)),
		}
		for i, r := range rows {
			s := seqs[r]
			if len(s.IDs) > T {
				return nil, fmt.Errorf("batches: sequence of example %d has %d tokens, more than the pad length %d (tokenize with a max-len <= pad length)", s.Example, len(s.IDs), T)
			}
			ids, labels, mask := make([]int32, T), make([]int32, T), make([]int32, T) // [T]
			copy(ids, s.IDs)
			copy(labels, s.Labels())
			for t := range T {
				if t < len(s.IDs) {
					mask[t] = 1
				} else {
					ids[t], labels[t] = opt.PadID, IgnoreIndex
				}
			}
			b.IDs[i], b.Labels[i], b.Mask[i], b.Examples[i] = ids, labels, mask, s.Example
		}
		out = append(out, b)
	}
	return out, nil
}
