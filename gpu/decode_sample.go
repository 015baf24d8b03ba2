//go:build t2mcuda

package gpu

import "github.com/t2m/t2m/model"

// The decoder's model.LogitsSteps: sampling (t2m ask --temperature) draws tokens on the host from the
// logits rows, so Prefill and Step run as for greedy decoding and choose also downloads g.logits
// ([n, V] fp32, n·V·4 bytes per step: 0.6 MB a row at Qwen2's vocabulary).

// The decoder samples as well as decoding greedily.
var _ model.LogitsSteps = (*decoder)(nil)

// PrefillLogits is Prefill returning the logits [len(prompts), V] of each prompt's last position.
func (g *decoder) PrefillLogits(slots []int32, prompts [][]int32) ([]float32, error) {
	g.keep, g.kept = true, nil
	defer g.stopKeeping()
	if _, err := g.Prefill(slots, prompts); err != nil {
		return nil, err
	}
	return g.kept, nil
}

// StepLogits is Step returning the logits [len(seqs), V] of each row.
func (g *decoder) StepLogits(seqs, ids, pos []int32) ([]float32, error) {
	g.keep, g.kept = true, nil
	defer g.stopKeeping()
	if _, err := g.Step(seqs, ids, pos); err != nil {
		return nil, err
	}
	return g.kept, nil
}

// stopKeeping returns choose to downloading token ids only.
func (g *decoder) stopKeeping() { g.keep, g.kept = false, nil }
