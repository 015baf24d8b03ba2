package model

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/safetensors"
)

// TestFixtureLeftPadding compares, on the valid tokens of a left-padded batch (the generation layout),
// t2m's logits with transformers' (a) given generate's position_ids (PositionsFromMask) and (b) given
// none, when forward uses arange(T). Padding positions are not compared: their queries attend to
// no token, and HF and t2m fill them differently (t2m: zeros).
func TestFixtureLeftPadding(t *testing.T) {
	path := filepath.Join(fixtureDir, "references_leftpad.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: run scripts/fixtures/make_qwen2_fixture.py --left-padding", path)
	}
	refs, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer refs.Close()
	f := loadFixture(t)
	info, err := refs.Info("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	batch, seq := info.Shape[0], info.Shape[1]
	ints := func(name string) []int32 {
		v, err := refs.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out
	}
	ids, mask, hfPos := ints("input_ids"), ints("attention_mask"), ints("position_ids")
	pos := PositionsFromMask(mask, batch, seq)
	for i := range pos {
		if pos[i] != hfPos[i] {
			t.Fatalf("PositionsFromMask = %v, transformers' generate gives %v", pos, hfPos)
		}
	}
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	for _, tc := range []struct {
		ref       string
		lora      *LoRAParams
		positions []int32
	}{{"base.logits", nil, pos}, {"lora.logits", lora, pos}, {"base.logits_noposids", nil, nil}} {
		g, err := Build(f.weights, tc.lora, batch, seq, ModeLogits)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Run(Batch{IDs: ids, Mask: mask, Positions: tc.positions}); err != nil {
			t.Fatal(err)
		}
		got, err := Values(g.Logits)
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := refs.Float32(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		vocab := len(want) / (batch * seq)
		var gv, wv []float32
		for row, m := range mask {
			if m == 1 {
				gv = append(gv, got[row*vocab:(row+1)*vocab]...)
				wv = append(wv, want[row*vocab:(row+1)*vocab]...)
			}
		}
		if e := numtest.MaxAbsRel(gv, wv); e > 1e-4 {
			t.Errorf("%s on valid tokens: max relative error %.3g > 1e-4", tc.ref, e)
		} else {
			t.Logf("%s on valid tokens: max relative error %.3g", tc.ref, e)
		}
	}
}
