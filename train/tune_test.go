package train

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// tuningBackend is the CPU backend with a GEMMTuner that records what it was given, or fails.
type tuningBackend struct {
	Backend
	got  [][]int
	fail bool
}

func (b *tuningBackend) TuneGEMMs(tokens []int) (string, error) {
	b.got = append(b.got, slices.Clone(tokens))
	if b.fail {
		return "", errors.New("no algorithms")
	}
	return "tuned", nil
}

// Before its first update a run gives a GEMMTuner every distinct padded micro-batch size of all its epochs,
// once and sorted; a failing tuner is a note in the log and the run still trains.
func TestTrainTunesBeforeFirstUpdate(t *testing.T) {
	fp := testFingerprint()
	for _, fail := range []bool{false, true} {
		seqs := randomSeqs(13, 61, 3)
		r := newTestRun(t, t.TempDir(), fp, seqs, nil)
		tb := &tuningBackend{Backend: r.Backend, fail: fail}
		r.Backend = tb
		if _, err := r.Train(); err != nil {
			t.Fatal(err)
		}
		want := map[int]bool{}
		for e := 0; e < fp.Epochs; e++ {
			for _, mb := range makeBatches(seqs, fp.BatchSize, fp.Seed+uint64(e), true, fp.BatchSize*fp.GradAccum, r.Bucket, 0) {
				want[mb.rows*mb.seq] = true
			}
		}
		var wantList []int
		for n := range want {
			wantList = append(wantList, n)
		}
		slices.Sort(wantList)
		if len(tb.got) != 1 || !slices.Equal(tb.got[0], wantList) {
			t.Errorf("fail=%v: tuner got %v, want one call with %v", fail, tb.got, wantList)
		}
		log := r.Log.(*bytes.Buffer).String()
		if fail != strings.Contains(log, "note: matrix products not tuned (no algorithms)") || !fail && !strings.Contains(log, "tuned (") {
			t.Errorf("fail=%v: log %q", fail, log)
		}
	}
}
