package train

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t2m/t2m/internal/numtest"
)

// dataParallelTol is the per-update agreement of a data-parallel run with a one-device run: the ranks sum
// their micro-batches' gradients in another order than one device does, so the parameters differ by float32
// rounding (~1e-7 relative per update) that later updates carry along.
const dataParallelTol = 1e-5

// runRanks trains world replicas of the same run in goroutines (rank 0 in dir, the others in dirs of their
// own, so that the test sees what they write) and returns each rank's result and error.
func runRanks(t *testing.T, dir string, world int, fp Fingerprint, setup func(rank int, r *Run)) ([]*Run, []*Result, []error) {
	t.Helper()
	group := NewLocalGroup(world)
	train, eval := randomSeqs(24, smallConfig().VocabSize, 3), randomSeqs(6, smallConfig().VocabSize, 4)
	runs := make([]*Run, world)
	for rank := range world {
		d := dir
		if rank > 0 {
			d = filepath.Join(t.TempDir(), "rank")
		}
		runs[rank] = newTestRun(t, d, fp, train, eval)
		runs[rank].Group = group[rank]
		if setup != nil {
			setup(rank, runs[rank])
		}
	}
	res, errs := make([]*Result, world), make([]error, world)
	var wg sync.WaitGroup
	for rank := range world {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[rank], errs[rank] = runs[rank].Train()
			if errs[rank] != nil && !errors.Is(errs[rank], ErrInterrupted) {
				group[rank].Close() // as a failed process leaves NCCL: the others must not wait forever
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Minute): // ranks that disagree would wait for each other forever: fail instead
		group[0].Close()
		<-finished
		t.Errorf("the ranks did not finish within a minute (one waited for the others)")
	}
	return runs, res, errs
}

func parallelFingerprint() Fingerprint {
	fp := testFingerprint()
	fp.GradAccum = 4
	return fp
}

func TestDataParallelMatchesOneDevice(t *testing.T) {
	fp := parallelFingerprint()
	oneDir := t.TempDir()
	one := newTestRun(t, oneDir, fp, randomSeqs(24, smallConfig().VocabSize, 3), randomSeqs(6, smallConfig().VocabSize, 4))
	oneRes, err := one.Train()
	if err != nil {
		t.Fatal(err)
	}
	want := readMetricsT(t, oneDir)
	for _, world := range []int{2, 4} {
		dir := t.TempDir()
		runs, res, errs := runRanks(t, dir, world, fp, nil)
		for rank, err := range errs {
			if err != nil {
				t.Fatalf("world %d, rank %d: %v", world, rank, err)
			}
		}
		got := readMetricsT(t, dir)
		if len(got) != len(want) {
			t.Fatalf("world %d: %d metric lines, one device wrote %d", world, len(got), len(want))
		}
		for i := range want {
			w, g := want[i], got[i]
			if w.Step != g.Step || (w.Loss == nil) != (g.Loss == nil) || (w.EvalLoss == nil) != (g.EvalLoss == nil) {
				t.Fatalf("world %d, line %d: %+v, one device %+v", world, i, g, w)
			}
			for _, p := range [][2]*float64{{w.Loss, g.Loss}, {w.GradNorm, g.GradNorm}, {w.EvalLoss, g.EvalLoss}, {w.LR, g.LR}} {
				if p[0] == nil {
					continue
				}
				if d := math.Abs(*p[1]-*p[0]) / math.Max(math.Abs(*p[0]), 1e-12); d > dataParallelTol {
					t.Errorf("world %d, update %d: %v vs one device's %v (rel %.2g > %g)", world, w.Step, *p[1], *p[0], d, dataParallelTol)
				}
			}
			if world > 1 && g.Loss != nil && g.AllReduceS == nil {
				t.Errorf("world %d, update %d: no allreduce_s in metrics", world, g.Step)
			}
		}
		for rank, r := range runs {
			for i, v := range r.Params.Values {
				if d := numtest.RelL2(v, one.Params.Values[i]); d > dataParallelTol {
					t.Errorf("world %d, rank %d: parameter %d differs from one device's by rel L2 %.2g", world, rank, i, d)
				}
				if rank > 0 {
					if d := numtest.MaxAbs(v, runs[0].Params.Values[i]); d != 0 {
						t.Errorf("world %d: rank %d's parameter %d differs from rank 0's by %g (the replicas must hold the same bits)", world, rank, i, d)
					}
				}
			}
			if rank > 0 {
				if entries, _ := os.ReadDir(r.Dir); len(entries) != 0 {
					t.Errorf("world %d: rank %d wrote %d files into its run folder (only rank 0 writes)", world, rank, len(entries))
				}
			}
		}
		if res[0].Steps != oneRes.Steps {
			t.Errorf("world %d: %d updates, one device %d", world, res[0].Steps, oneRes.Steps)
		}
		if _, err := os.Stat(filepath.Join(dir, "adapter", "adapter_model.safetensors")); err != nil {
			t.Errorf("world %d: rank 0 saved no adapter: %v", world, err)
		}
	}
}

func TestDataParallelNeedsEvenWindows(t *testing.T) {
	_, _, errs := runRanks(t, t.TempDir(), 3, parallelFingerprint(), nil)
	for rank, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "--grad-accum 4 must be a multiple of the number of GPUs (3)") {
			t.Errorf("rank %d: %v", rank, err)
		}
	}
}

// TestDataParallelStopAndResumeOnOtherCount: a stop request seen by one rank only stops every rank after
// the same update (none waits for the others forever); the checkpoint then resumes on one device and ends
// where an uninterrupted run ends.
func TestDataParallelStopAndResumeOnOtherCount(t *testing.T) {
	fp := parallelFingerprint()
	dir := t.TempDir()
	stop := make(chan struct{})
	close(stop)
	_, res, errs := runRanks(t, dir, 2, fp, func(rank int, r *Run) {
		if rank == 1 {
			r.Stop = stop
		}
	})
	for rank, err := range errs {
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("rank %d: %v, want ErrInterrupted", rank, err)
		}
		if res[rank].Steps != 1 {
			t.Errorf("rank %d stopped after %d updates, want 1", rank, res[rank].Steps)
		}
	}
	resumed := newTestRun(t, dir, fp, randomSeqs(24, smallConfig().VocabSize, 3), randomSeqs(6, smallConfig().VocabSize, 4))
	resumed.Resume = true
	if _, err := resumed.Train(); err != nil {
		t.Fatal(err)
	}
	one := newTestRun(t, t.TempDir(), fp, randomSeqs(24, smallConfig().VocabSize, 3), randomSeqs(6, smallConfig().VocabSize, 4))
	if _, err := one.Train(); err != nil {
		t.Fatal(err)
	}
	for i, v := range resumed.Params.Values {
		if d := numtest.RelL2(v, one.Params.Values[i]); d > dataParallelTol {
			t.Errorf("parameter %d after 2 GPUs then 1: rel L2 %.2g from an uninterrupted one-device run", i, d)
		}
	}
}

// TestDataParallelPeerGone: when a rank leaves (its process died), the others fail with an error instead
// of waiting.
func TestDataParallelPeerGone(t *testing.T) {
	group := NewLocalGroup(2)
	r := newTestRun(t, t.TempDir(), parallelFingerprint(), randomSeqs(24, smallConfig().VocabSize, 3), nil)
	r.Group = group[0]
	group[1].Close()
	_, err := r.Train()
	if err == nil || !strings.Contains(err.Error(), "another rank stopped") {
		t.Fatalf("got %v, want the group's closed error", err)
	}
}

func readMetricsT(t *testing.T, dir string) []Metric {
	t.Helper()
	m, err := ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestShareOutBalancesPaddedTokens(t *testing.T) {
	mb := func(rows, seq int) microBatch { return microBatch{rows: rows, seq: seq} }
	win := []microBatch{mb(4, 64), mb(4, 48), mb(4, 48), mb(4, 32)} // padded tokens 256, 192, 192, 128
	if got := shareOut(win, 2); fmt.Sprint(got) != "[0 1 1 0]" {
		t.Errorf("shareOut over 2 ranks: %v, want [0 1 1 0] (256+128 and 192+192)", got)
	}
	if got := shareOut(win, 1); fmt.Sprint(got) != "[0 0 0 0]" {
		t.Errorf("one rank: %v", got)
	}
	if got := shareOut(win, 4); fmt.Sprint(got) != "[0 1 2 3]" {
		t.Errorf("4 ranks: %v, want one each", got)
	}
}

// TestDataParallelEarlyStopFollowsRankZero: ranks whose evaluations disagree (rank 1 would stop early, rank 0
// would not) both follow rank 0 and finish together.
func TestDataParallelEarlyStopFollowsRankZero(t *testing.T) {
	fp := parallelFingerprint()
	_, res, errs := runRanks(t, t.TempDir(), 2, fp, func(rank int, r *Run) {
		values := map[int]float64{}
		for step := 1; step <= 20; step++ {
			values[step] = float64(step) // improving: never stops
			if rank == 1 {
				values[step] = -float64(step) // worse each time: would stop after 1 evaluation without improvement
			}
		}
		s := &scripted{t: t, run: r, values: values}
		r.EvalEvery, r.Evaluate, r.EarlyStopping, r.EarlyStoppingMetric = 1, s.evaluate, 1, "score"
	})
	for rank, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", rank, err)
		}
	}
	if res[0].Steps != res[1].Steps || res[0].EarlyStop.Stopped || res[1].EarlyStop.Stopped {
		t.Errorf("rank 0: %d updates (stopped %v), rank 1: %d (stopped %v); want both to run to the end as rank 0 decides",
			res[0].Steps, res[0].EarlyStop.Stopped, res[1].Steps, res[1].EarlyStop.Stopped)
	}
}
