package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
)

// Defaults of the original pipeline (TRL SFTConfig as text_to_mongo set it; HF TrainingArguments for the
// rest).
const (
	DefaultWarmupRatio = 0.05     // warmup_ratio
	DefaultScheduler   = "cosine" // lr_scheduler_type
	DefaultMaxGradNorm = 1.0      // max_grad_norm
	DefaultWeightDecay = 0.0      // TrainingArguments.weight_decay
	DefaultDropout     = 0.05     // LoRA dropout
	DefaultBucket      = 64       // micro-batch lengths are padded to a multiple of this, so graphs are reused
	ReservedBucket     = 8        // the same on a backend that runs any shape within one it reserved (ShapeReserver)
)

// CheckRecipe checks the fingerprint's optimizer and schedule settings, naming the t2m flag of a bad
// value and what it accepts: the schedule kind, a warmup ratio in [0, 1], a weight decay and a max grad
// norm that are finite and ≥ 0 (0: no decay, no clipping), a dropout in [0, 1).
func CheckRecipe(fp Fingerprint) error {
	if err := CheckScheduler(fp.Scheduler); err != nil {
		return fmt.Errorf("--lr-scheduler: %w", err)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !finite(fp.WarmupRatio) || fp.WarmupRatio < 0 || fp.WarmupRatio > 1:
		return fmt.Errorf("--warmup-ratio %v must be in [0, 1] (the fraction of updates that warm up; default %g)", fp.WarmupRatio, DefaultWarmupRatio)
	case !finite(fp.WeightDecay) || fp.WeightDecay < 0:
		return fmt.Errorf("--weight-decay %v must be a finite number ≥ 0 (default %g)", fp.WeightDecay, DefaultWeightDecay)
	case !finite(fp.MaxGradNorm) || fp.MaxGradNorm < 0:
		return fmt.Errorf("--max-grad-norm %v must be a finite number ≥ 0 (0: no clipping; default %g)", fp.MaxGradNorm, DefaultMaxGradNorm)
	case !finite(fp.Dropout) || fp.Dropout < 0 || fp.Dropout >= 1:
		return fmt.Errorf("--lora-dropout %v must be in [0, 1) (default %g)", fp.Dropout, DefaultDropout)
	}
	return nil
}

// ErrInterrupted is returned by Run after it saved a checkpoint because Stop was closed.
var ErrInterrupted = errors.New("training interrupted; checkpoint saved, continue with --resume")

// Run is one training run. Fill the fields, then call Train.
type Run struct {
	Dir         string      // runs/<run>: checkpoint/, adapter/, metrics.jsonl, train_config.json
	Fingerprint Fingerprint // hyperparameters (Epochs, BatchSize, GradAccum, LR, ... are read from it)
	SaveEvery   int         // also checkpoint every this many updates (0: at epoch ends and at the end only)
	Bucket      int         // pad lengths to a multiple of this (0: DefaultBucket)
	// Pack, when > 0, packs sequences into micro-batches of one row of at most Pack tokens (pack.go): each
	// update and each eval micro-batch holds the same sequences as without it, with the same loss and
	// gradients, but computes no padding to the longest. Pack must be at least BatchSize × the longest
	// sequence.
	Pack      int
	PadID     int32         // id written in padding positions
	Resume    bool          // continue from Dir/checkpoint
	Adapter   *lora.Adapter // the trained matrices, saved in the PEFT format to Dir/adapter
	Params    *Params       // the same matrices, in the backend's order
	Backend   Backend
	TrainSeqs []data.Sequence // tokenized train split
	EvalSeqs  []data.Sequence // tokenized eval split (eval loss per epoch); may be empty
	Log       io.Writer       // progress lines
	Stop      <-chan struct{} // closed on Ctrl-C: save a checkpoint after the current update and return
	// MaxSteps, when > 0, stops after that many updates in this call with a checkpoint (for tests and
	// quick checks); the schedule still spans the whole run.
	MaxSteps int
	// EvalEvery, when > 0, calls Evaluate after every EvalEvery-th update and writes its rates to
	// metrics.jsonl (a line with "rates"); the training itself (order, dropout, updates) is unchanged.
	EvalEvery int
	Evaluate  EvaluateFunc
	// EarlyStopping, when > 0 (with EvalEvery), stops the run after that many evaluations in a row
	// without improvement of Evaluate's EarlyStoppingMetric (higher is better; a tie is no improvement).
	// The adapter folder then holds the adapter of the best evaluation, instead of the best eval loss's;
	// the checkpoint holds the last state.
	EarlyStopping       int
	EarlyStoppingMetric string
	// Group, when set with more than one rank, makes this Run one replica of a data-parallel run (see
	// parallel.go): every rank runs the same Run on its own device; each update's micro-batches are shared
	// out among the ranks by padded tokens (shareOut), and the gradients, losses and stop requests are
	// summed over the ranks once per update, so each update sees the same BatchSize × GradAccum sequences
	// as on one device and every rank applies the same step. Only rank 0 writes (metrics, checkpoints,
	// adapter); the others only read a checkpoint to resume.
	Group Collective
	// HostOptimizer keeps the gradient sums, clipping and AdamW on the host even when the backend could
	// run them on its device (DeviceOptimizer); for comparisons of the two.
	HostOptimizer bool

	upd *Updater // this Train call's: where the optimizer runs
}

// Result summarizes a finished (or stopped) run.
type Result struct {
	Steps       int       // updates done in total
	FinalLoss   float64   // training loss of the last update
	EvalLosses  []float64 // per epoch finished in this call
	BestEval    float64
	AdapterDir  string
	StepSeconds float64 // mean wall time of an update in this call
	// EarlyStop is early stopping's final state (the best metric value and its update, whether the run
	// stopped early); zero without Run.EarlyStopping.
	EarlyStop EarlyStopState
}

// Train runs (or resumes) the loop until the last epoch, Stop, or MaxSteps.
func (r *Run) Train() (*Result, error) {
	fp := r.Fingerprint
	if fp.Epochs < 1 || fp.BatchSize < 1 || fp.GradAccum < 1 {
		return nil, fmt.Errorf("train: epochs %d, batch size %d and grad accum %d must be at least 1", fp.Epochs, fp.BatchSize, fp.GradAccum)
	}
	if !(fp.LR > 0) || math.IsInf(fp.LR, 0) || r.SaveEvery < 0 {
		return nil, fmt.Errorf("train: learning rate %v must be finite and > 0, save-every %d ≥ 0", fp.LR, r.SaveEvery)
	}
	if err := CheckRecipe(fp); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := r.checkSignal(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	rank, world := r.rank()
	if world > 1 && fp.GradAccum%world != 0 {
		return nil, fmt.Errorf("train: --grad-accum %d must be a multiple of the number of GPUs (%d), so that each update's micro-batches "+
			"spread evenly; pick --grad-accum %d or %d (the sequences per update are --batch-size × --grad-accum whatever the number of GPUs)",
			fp.GradAccum, world, max(world, fp.GradAccum/world*world), (fp.GradAccum/world+1)*world)
	}
	lead := rank == 0
	if len(r.TrainSeqs) == 0 {
		return nil, fmt.Errorf("train: no training sequences (all dropped by --max-len %d? see the tokenize counts)", fp.MaxLen)
	}
	bucket := r.Bucket
	if bucket <= 0 {
		bucket = DefaultBucket
	}
	if err := r.checkPack(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	nBatches := (len(r.TrainSeqs) + fp.BatchSize - 1) / fp.BatchSize
	windows := (nBatches + fp.GradAccum - 1) / fp.GradAccum // updates per epoch
	total := windows * fp.Epochs
	sched := Schedule{Peak: fp.LR, Warmup: WarmupSteps(total, fp.WarmupRatio), Total: total, Kind: fp.Scheduler}
	opt := NewAdamW(r.Params.Sizes(), fp.WeightDecay)
	ckptDir := filepath.Join(r.Dir, "checkpoint")
	adapterDir := filepath.Join(r.Dir, "adapter")
	st := State{Fingerprint: fp, RNG: fmt.Sprintf("shuffle: PCG(seed+epoch) with seed %d, each update's sequences sorted longest first; dropout: counter-based on the micro-batch index", fp.Seed)}
	if r.earlyStopping() {
		st.EarlyStop = EarlyStopState{EvalEvery: r.EvalEvery, Patience: r.EarlyStopping, Metric: r.EarlyStoppingMetric}
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if r.Resume {
		saved, err := LoadCheckpoint(ckptDir, r.Params, opt)
		if err != nil {
			return nil, fmt.Errorf("train: --resume: %w", err)
		}
		if err := saved.CheckResume(ckptDir, fp, windows); err != nil {
			return nil, fmt.Errorf("train: --resume: %w", err)
		}
		if err := saved.checkEarlyStopResume(ckptDir, st.EarlyStop); err != nil {
			return nil, fmt.Errorf("train: --resume: %w", err)
		}
		st = saved
		fmt.Fprintf(r.Log, "resuming from %s: %d/%d updates done, epoch %d\n", ckptDir, st.Step, total, st.Epoch+1)
		if es := st.EarlyStop; es.Patience > 0 && es.BestStep > 0 {
			fmt.Fprintf(r.Log, "early stopping: best %s %.4f at update %d, %d of %d evaluations without improvement%s\n",
				es.Metric, es.Best, es.BestStep, es.Bad, es.Patience, map[bool]string{true: "; the run had stopped early", false: ""}[es.Stopped])
		}
		if lead {
			if err := truncateMetrics(filepath.Join(r.Dir, "metrics.jsonl"), st.Step); err != nil {
				return nil, err
			}
		}
	} else {
		if _, err := os.Stat(filepath.Join(ckptDir, checkpointState)); err == nil {
			return nil, fmt.Errorf("train: %s already holds a checkpoint of an earlier run: pass --resume to continue it, another --run-name, or delete %s", r.Dir, r.Dir)
		}
		if lead {
			if err := os.Remove(filepath.Join(r.Dir, "metrics.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("train: %w", err)
			}
		}
	}
	// Only rank 0 writes: the other ranks' metrics and checkpoints would be the same.
	mf := io.Writer(io.Discard)
	if lead {
		f, err := os.OpenFile(filepath.Join(r.Dir, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		defer f.Close()
		mf = f
	}
	start := time.Now()
	writeMetric := func(m Metric) error {
		m.Elapsed, m.Timestamp = time.Since(start).Seconds(), time.Now().UTC().Format(time.RFC3339)
		b, _ := json.Marshal(m)
		if _, err := mf.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("train: writing metrics: %w", err)
		}
		return nil
	}
	upd, err := NewUpdater(r.Backend, r.Params, opt, fp.MaxGradNorm, r.HostOptimizer)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r.upd = upd
	defer func() { r.upd = nil }()
	save := func() error {
		if !lead {
			return nil
		}
		if err := upd.Sync(); err != nil {
			return err
		}
		return SaveCheckpoint(ckptDir, st, r.Params, opt)
	}

	res := &Result{AdapterDir: adapterDir, BestEval: st.BestEval}
	fmt.Fprintf(r.Log, "training on %s: %d sequences, %d micro-batches of %d, %d updates per epoch × %d epochs = %d updates (warmup %d, %s schedule, peak lr %g)\n",
		r.Backend.Name(), len(r.TrainSeqs), nBatches, fp.BatchSize, windows, fp.Epochs, total, sched.Warmup, sched.Kind, fp.LR)
	if zero := sched.ZeroLRUpdates(); zero == total {
		what := fmt.Sprintf("all %d updates of this run have", total)
		if total == 1 {
			what = "the only update of this run has"
		}
		fmt.Fprintf(r.Log, "warning: %s learning rate 0 (warmup: %d of %d updates, --warmup-ratio %g; HF's first warmup update has rate 0), so the adapter will not change; "+
			"give the run more updates (more examples or --epochs, a smaller --batch-size or --grad-accum) or pass --warmup-ratio 0\n",
			what, sched.Warmup, total, fp.WarmupRatio)
	} else if zero*2 > total {
		fmt.Fprintf(r.Log, "warning: %d of this run's %d updates have learning rate 0 (warmup %d updates: --warmup-ratio %g)\n", zero, total, sched.Warmup, fp.WarmupRatio)
	}
	if r.Pack > 0 && lead {
		fmt.Fprintf(r.Log, "packing: each update's sequences go, one after the other, into its micro-batches of one row of at most %d tokens (T2M_PACK=0: rows of their own)\n", r.Pack)
	}
	stepsThisCall := 0
	var stepTime time.Duration
	stopAgreed := false // the ranks' agreed stop request of the last update (a data-parallel run)
	// stopRequested: Stop was closed (one device), or some rank's Stop was as of the last all-reduce.
	stopRequested := func() bool {
		if world > 1 {
			return stopAgreed
		}
		return r.stopped()
	}
	r.tuneGEMMs(st.Epoch, bucket, lead)
training:
	for st.Epoch < fp.Epochs && !st.EarlyStop.Stopped {
		batches := r.layout(bucket, true).batches(r.TrainSeqs, fp.Seed+uint64(st.Epoch), true, r.PadID)
		for st.Window < windows {
			t0 := time.Now()
			win := batches[st.Window*fp.GradAccum : min((st.Window+1)*fp.GradAccum, len(batches))]
			numItems := 0
			tokens := 0
			for _, mb := range win {
				numItems += model.CountCompletionTokens(mb.batch.Labels, mb.rows, mb.seq)
				tokens += mb.tokens
			}
			if err := upd.Begin(); err != nil {
				return nil, fmt.Errorf("train: update %d: %w", st.Step+1, err)
			}
			var loss float64
			var times []MicroBatchTime
			owner := shareOut(win, world)
			for k, mb := range win {
				if owner[k] != rank {
					continue // another rank's micro-batch
				}
				if world == 1 && k > 0 && r.stopped() {
					// Drop the partial window: the parameters are still those of the last update, which is
					// what the checkpoint records, so --resume redoes this window exactly.
					if err := save(); err != nil {
						return nil, fmt.Errorf("train: %w", err)
					}
					fmt.Fprintf(r.Log, "saved checkpoint %s (update %d; the interrupted update will be redone)\n", ckptDir, st.Step)
					res.Steps = st.Step
					return res, ErrInterrupted
				}
				b := mb.batch
				b.NumItems = float32(numItems)
				tmb := time.Now()
				l, err := upd.Loss(b, mb.rows, mb.seq, uint64(st.Step*fp.GradAccum+k))
				if err != nil {
					return nil, fmt.Errorf("train: update %d, micro-batch %d: %w", st.Step+1, k+1, err)
				}
				mt := MicroBatchTime{Rows: mb.rows, Seq: mb.seq, Tokens: mb.tokens, MS: float64(time.Since(tmb).Microseconds()) / 1000}
				if ht, ok := r.Backend.(HostTimer); ok {
					launch, wait := ht.HostTimes()
					mt.LaunchMS, mt.WaitMS = float64(launch.Microseconds())/1000, float64(wait.Microseconds())/1000
				}
				times = append(times, mt)
				loss += float64(l)
			}
			var allReduce time.Duration
			if world > 1 {
				// One all-reduce per update: the gradients, the loss and the stop requests, summed over ranks.
				extra := []float32{float32(loss), 0}
				if r.stopped() {
					extra[1] = 1
				}
				t := time.Now()
				if err := upd.AllReduce(r.Group, extra); err != nil {
					return nil, fmt.Errorf("train: update %d: rank %d of %d: %w", st.Step+1, rank, world, err)
				}
				allReduce = time.Since(t)
				loss, stopAgreed = float64(extra[0]), extra[1] > 0
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("train: update %d: loss is %v; lower --lr or check the data", st.Step+1, loss)
			}
			lr := sched.LR(st.Step)
			norm, err := upd.Step(lr)
			if err != nil {
				return nil, fmt.Errorf("train: update %d: %w", st.Step+1, err)
			}
			st.Step++
			st.Window++
			stepsThisCall++
			dt := time.Since(t0)
			stepTime += dt
			res.FinalLoss = loss
			tps := float64(tokens) / dt.Seconds()
			epochF := float64(st.Epoch) + float64(st.Window)/float64(windows)
			eta := time.Duration(float64(stepTime) / float64(stepsThisCall) * float64(total-st.Step))
			m := Metric{Step: st.Step, Epoch: epochF, Loss: f64(loss), LR: f64(lr), GradNorm: f64(norm), TokensPS: f64(tps),
				MicroBatches: times}
			ar := ""
			if world > 1 {
				m.AllReduceS = f64(allReduce.Seconds())
				ar = fmt.Sprintf("  all-reduce %s", allReduce.Round(100*time.Microsecond))
			}
			fmt.Fprintf(r.Log, "step %d/%d  epoch %.2f  loss %.4f  lr %.3g  grad_norm %.3f  %.0f tok/s  %s/step%s  ETA %s\n",
				st.Step, total, epochF, loss, lr, norm, tps, dt.Round(time.Millisecond), ar, eta.Round(time.Second))
			if err := writeMetric(m); err != nil {
				return nil, err
			}
			epochEnd := st.Window == windows
			if epochEnd {
				st.Epoch, st.Window = st.Epoch+1, 0
				if err := r.endEpoch(&st, res, bucket, adapterDir, writeMetric); err != nil {
					return nil, err
				}
			}
			stopEarly, err := r.evaluate(&st, epochF, adapterDir, writeMetric)
			if err != nil {
				return nil, err
			}
			if world > 1 && r.earlyStopping() && st.Step%r.EvalEvery == 0 {
				// Every rank evaluated; rank 0's decision holds for all (GPUs of another kind could break a
				// near-tie otherwise, and a rank that stopped alone would leave the others waiting).
				flag := []float32{0}
				if lead && stopEarly {
					flag[0] = 1
				}
				if err := r.Group.AllReduceSum([][]float32{flag}); err != nil {
					return nil, fmt.Errorf("train: update %d: rank %d of %d: %w", st.Step, rank, world, err)
				}
				stopEarly = flag[0] > 0
				st.EarlyStop.Stopped = stopEarly
			}
			if stopEarly {
				if err := save(); err != nil {
					return nil, fmt.Errorf("train: %w", err)
				}
				es := st.EarlyStop
				fmt.Fprintf(r.Log, "early stopping after update %d: %d evaluations without improvement of %s; the adapter is update %d's (%s %.4f), the checkpoint the last state\n",
					st.Step, es.Bad, es.Metric, es.BestStep, es.Metric, es.Best)
				break training
			}
			if epochEnd {
				if err := save(); err != nil {
					return nil, fmt.Errorf("train: %w", err)
				}
				break
			}
			stop := r.SaveEvery > 0 && st.Step%r.SaveEvery == 0
			interrupted := stopRequested()
			limit := r.MaxSteps > 0 && stepsThisCall >= r.MaxSteps
			if stop || interrupted || limit {
				if err := save(); err != nil {
					return nil, fmt.Errorf("train: %w", err)
				}
				fmt.Fprintf(r.Log, "saved checkpoint %s (update %d)\n", ckptDir, st.Step)
			}
			if interrupted {
				res.Steps = st.Step
				return res, ErrInterrupted
			}
			if limit {
				res.Steps, res.StepSeconds = st.Step, stepTime.Seconds()/float64(stepsThisCall)
				return res, nil
			}
		}
		if stopRequested() && st.Epoch < fp.Epochs {
			res.Steps = st.Step
			return res, ErrInterrupted
		}
		if r.MaxSteps > 0 && stepsThisCall >= r.MaxSteps && st.Epoch < fp.Epochs {
			res.Steps, res.StepSeconds = st.Step, stepTime.Seconds()/float64(stepsThisCall)
			return res, nil
		}
	}
	// The adapter folder holds the best evaluation's adapter with early stopping, else the best eval loss's;
	// without either (no evaluation, no eval split) the last parameters are the adapter.
	if (r.earlyStopping() && st.EarlyStop.BestStep == 0) || (!r.earlyStopping() && !st.HasBest) {
		if err := r.saveAdapter(adapterDir); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if err := upd.Sync(); err != nil { // the caller's Params hold the last update
		return nil, fmt.Errorf("train: %w", err)
	}
	res.Steps, res.BestEval, res.EarlyStop = st.Step, st.BestEval, st.EarlyStop
	if stepsThisCall > 0 {
		res.StepSeconds = stepTime.Seconds() / float64(stepsThisCall)
	}
	fmt.Fprintf(r.Log, "done: %d updates, adapter in %s\n", st.Step, adapterDir)
	return res, nil
}

// endEpoch computes the eval loss and saves the adapter when it is the best so far (the original's
// load_best_model_at_end with metric_for_best_model eval_loss).
func (r *Run) endEpoch(st *State, res *Result, bucket int, adapterDir string, writeMetric func(Metric) error) error {
	if len(r.EvalSeqs) == 0 {
		return nil
	}
	t0 := time.Now()
	el, err := r.EvalLoss(bucket)
	if err != nil {
		return err
	}
	res.EvalLosses = append(res.EvalLosses, el)
	best := !st.HasBest || el < st.BestEval
	note := map[bool]string{true: ", best so far: adapter saved", false: ""}[best]
	if r.earlyStopping() { // the adapter is chosen by the early-stopping metric instead
		note = map[bool]string{true: ", best so far", false: ""}[best]
	}
	fmt.Fprintf(r.Log, "epoch %d: eval_loss %.4f on %d sequences (%s)%s\n", st.Epoch, el, len(r.EvalSeqs),
		time.Since(t0).Round(time.Millisecond), note)
	if err := writeMetric(Metric{Step: st.Step, Epoch: float64(st.Epoch), EvalLoss: f64(el)}); err != nil {
		return err
	}
	if best {
		st.BestEval, st.HasBest = el, true
		res.BestEval = el
		if r.earlyStopping() {
			return nil
		}
		if err := r.saveAdapter(adapterDir); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	return nil
}

// EvalLoss is HF's evaluation loss: each micro-batch's mean completion-token loss, averaged over
// micro-batches weighted by the sequences they hold; no dropout. It logs its progress with an ETA to r.Log (when set)
// at each tenth of the micro-batches.
func (r *Run) EvalLoss(bucket int) (float64, error) {
	batches := r.layout(bucket, false).batches(r.EvalSeqs, 0, false, r.PadID)
	var sum float64
	var rows int
	start := time.Now()
	rank, world := r.rank()
	for i, mb := range batches {
		if i%world != rank || model.CountCompletionTokens(mb.batch.Labels, mb.rows, mb.seq) == 0 {
			continue // another rank's micro-batch, or nothing to score
		}
		l, err := r.Backend.Loss(mb.batch, mb.rows, mb.seq, 0, nil)
		if err != nil {
			return 0, fmt.Errorf("eval loss, micro-batch %d: %w", i+1, err)
		}
		sum += float64(l) * float64(mb.seqs)
		rows += mb.seqs
		if done, n := i+1, len(batches); r.Log != nil && done*10/n != i*10/n {
			el := time.Since(start)
			eta := time.Duration(float64(el) / float64(done) * float64(n-done))
			fmt.Fprintf(r.Log, "eval loss: %d/%d micro-batches  elapsed %s  ETA %s\n", done, n, el.Round(time.Second), eta.Round(time.Second))
		}
	}
	if world > 1 {
		// Summed over the ranks in float32: the eval loss agrees with one device's to about 1e-7 relative.
		parts := []float32{float32(sum), float32(rows)}
		if err := r.Group.AllReduceSum([][]float32{parts}); err != nil {
			return 0, fmt.Errorf("eval loss: rank %d of %d: %w", rank, world, err)
		}
		sum, rows = float64(parts[0]), int(parts[1])
	}
	if rows == 0 {
		return math.NaN(), nil
	}
	return sum / float64(rows), nil
}

// tuneGEMMs gives a GEMMTuner backend the micro-batch sizes of epochs from on, before the first update. It
// changes no result, so a failure is a note and training goes on with the library's defaults.
func (r *Run) tuneGEMMs(from, bucket int, lead bool) {
	t, ok := r.Backend.(GEMMTuner)
	if !ok || from >= r.Fingerprint.Epochs {
		return
	}
	fp := r.Fingerprint
	seen := map[int]bool{}
	var tokens []int
	for e := from; e < fp.Epochs; e++ {
		for _, n := range r.layout(bucket, true).tokens(r.TrainSeqs, fp.Seed+uint64(e), true) {
			if !seen[n] {
				seen[n] = true
				tokens = append(tokens, n)
			}
		}
	}
	sort.Ints(tokens)
	t0 := time.Now()
	summary, err := t.TuneGEMMs(tokens)
	switch {
	case err != nil:
		fmt.Fprintf(r.Log, "note: matrix products not tuned (%v); training with the library's default algorithms\n", err)
	case lead && summary != "":
		fmt.Fprintf(r.Log, "%s (%.1f s)\n", summary, time.Since(t0).Seconds())
	}
}

// layout is how the run groups sequences into micro-batches: for training (windows of an update's
// sequences) or for the eval loss (micro-batches of BatchSize in order), packed when r.Pack > 0.
func (r *Run) layout(bucket int, training bool) packLayout {
	l := packLayout{size: r.Fingerprint.BatchSize, bucket: bucket, pack: r.Pack}
	if training {
		l.window = r.Fingerprint.BatchSize * r.Fingerprint.GradAccum
	}
	return l
}

// checkPack checks that a packed micro-batch can hold BatchSize of the longest sequences (the grouping the
// packer starts from).
func (r *Run) checkPack() error {
	if r.Pack <= 0 {
		return nil
	}
	longest := 0
	for _, s := range append(append([]data.Sequence{}, r.TrainSeqs...), r.EvalSeqs...) {
		longest = max(longest, len(s.IDs))
	}
	if need := r.Fingerprint.BatchSize * longest; need > r.Pack {
		return fmt.Errorf("packed micro-batches of %d tokens cannot hold %d sequences of %d tokens (the longest); need %d", r.Pack, r.Fingerprint.BatchSize, longest, need)
	}
	return nil
}

func (r *Run) stopped() bool {
	if r.Stop == nil {
		return false
	}
	select {
	case <-r.Stop:
		return true
	default:
		return false
	}
}
