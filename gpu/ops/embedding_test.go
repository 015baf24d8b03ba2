//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

func TestEmbeddingParity(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(5, 5))
	const vocab, hidden, rows = 1000, 64 * 3, 150
	table := ktRand(rng, vocab*hidden, -1, 1)
	ids := make([]int32, rows)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	ids[0], ids[1] = 0, vocab-1
	bt, bi := ktBF16(t, d, a, table), ktUp(t, d, a, ids)
	bad := ktUp(t, d, a, []int32{0})
	by := ktPoison(t, d, a, rows*hidden*2)
	if err := EmbeddingForward(d, by, bt, bi, bad, rows, vocab, hidden); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, rows*hidden)
	if err := model.EmbeddingForward(want, table, ids, vocab, hidden); err != nil {
		t.Fatal(err)
	}
	ktCompare(t, "embedding", ktGetBF16(t, d, by, rows*hidden), want, tolF32) // a copy: exact
	if err := EmbeddingCheck(d, bad); err != nil {
		t.Errorf("valid ids reported bad: %v", err)
	}

	// An id outside the vocabulary is reported with its row.
	ids[42] = vocab
	if err := cuda.Upload(d, bi, ids); err != nil {
		t.Fatal(err)
	}
	if err := EmbeddingForward(d, by, bt, bi, bad, rows, vocab, hidden); err != nil {
		t.Fatal(err)
	}
	if err := EmbeddingCheck(d, bad); err == nil || !strings.Contains(err.Error(), "row 42") {
		t.Errorf("id %d at row 42: check says %v, want an error naming row 42", vocab, err)
	}
}
