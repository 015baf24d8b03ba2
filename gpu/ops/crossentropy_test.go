//go:build t2mcuda

package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

func TestLMHeadCrossEntropyParity(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 64<<20)
	rng := rand.New(rand.NewPCG(7, 7))
	const B, T, H, V = 3, 41, 64, 1001
	rows := B * T
	h := ktRand(rng, rows*H, -1, 1)
	w := ktRand(rng, V*H, -0.5, 0.5)
	// Completion-only labels: the prompt part of each sequence is ignored, as data/ builds them.
	labels := make([]int32, rows)
	for i := range labels {
		if i%T < T*6/10 {
			labels[i] = -100
		} else {
			labels[i] = int32(rng.IntN(V))
		}
	}
	numItems := float32(model.CountCompletionTokens(labels, B, T)) + 3 // as if other micro-batches counted
	const dloss = 1.5
	s := model.CEShape{Batch: B, Seq: T, Hidden: H, Vocab: V, IgnoreIndex: -100}
	wantLoss, err := model.LMHeadCrossEntropyForward(h, w, labels, numItems, s)
	if err != nil {
		t.Fatal(err)
	}
	wantDh := make([]float32, rows*H)
	if err := model.LMHeadCrossEntropyBackward(wantDh, h, w, labels, numItems, dloss, s); err != nil {
		t.Fatal(err)
	}

	bh, bw, bl := ktBF16(t, d, a, h), ktBF16(t, d, a, w), ktUp(t, d, a, labels)
	targets := model.CountCompletionTokens(labels, B, T)
	for _, cs := range []struct {
		chunk, targets int
	}{{rows, 0}, {50, 0}, {rows, targets}, {7, targets}} { // one chunk; chunks that do not divide the rows
		c := CEDims{B: B, T: T, Hidden: H, Vocab: V, IgnoreIndex: -100, Chunk: cs.chunk, Targets: cs.targets}
		bad := ktUp(t, d, a, []int32{0})
		loss, dh := ktPoison(t, d, a, 4), ktPoison(t, d, a, int64(rows*H)*2)
		scratch := ktPoison(t, d, a, LMHeadCrossEntropyScratchBytes(c))
		if err := LMHeadCrossEntropy(d, loss, dh, bh, bw, bl, bad, scratch, c, numItems, dloss); err != nil {
			t.Fatal(err)
		}
		ktCompare(t, "lm_head CE loss", ktGetF32(t, d, loss, 1), []float32{wantLoss}, tolF32)
		ktCompare(t, "lm_head CE dh", ktGetBF16(t, d, dh, rows*H), wantDh, tolBF16)
		if err := LMHeadCrossEntropyCheck(d, bad); err != nil {
			t.Errorf("valid labels reported bad: %v", err)
		}
	}
	if math.IsNaN(float64(wantLoss)) || wantLoss <= 0 {
		t.Fatalf("reference loss %v", wantLoss)
	}

	// A label outside the vocabulary is flagged with its row (row n predicts labels[n+1]).
	labels[T+20] = V + 5
	if err := cuda.Upload(d, bl, labels); err != nil {
		t.Fatal(err)
	}
	c := CEDims{B: B, T: T, Hidden: H, Vocab: V, IgnoreIndex: -100, Chunk: 64}
	bad := ktUp(t, d, a, []int32{0})
	loss, dh := ktPoison(t, d, a, 4), ktPoison(t, d, a, int64(rows*H)*2)
	scratch := ktPoison(t, d, a, LMHeadCrossEntropyScratchBytes(c))
	if err := LMHeadCrossEntropy(d, loss, dh, bh, bw, bl, bad, scratch, c, numItems, dloss); err != nil {
		t.Fatal(err)
	}
	if err := LMHeadCrossEntropyCheck(d, bad); err == nil || !strings.Contains(err.Error(), "row 60") {
		t.Errorf("label %d at row %d: check says %v, want an error naming row %d", V+5, T+20, err, T+19)
	}

	// A Targets count that does not match the labels is reported.
	c = CEDims{B: B, T: T, Hidden: H, Vocab: V, IgnoreIndex: -100, Chunk: 64,
		Targets: model.CountCompletionTokens(labels, B, T) - 1}
	bad = ktUp(t, d, a, []int32{0})
	scratch = ktPoison(t, d, a, LMHeadCrossEntropyScratchBytes(c))
	if err := LMHeadCrossEntropy(d, loss, dh, bh, bw, bl, bad, scratch, c, numItems, dloss); err != nil {
		t.Fatal(err)
	}
	if err := LMHeadCrossEntropyCheck(d, bad); err == nil || !strings.Contains(err.Error(), "Targets") {
		t.Errorf("a wrong Targets count: check says %v, want an error about Targets", err)
	}
}
