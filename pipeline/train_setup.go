package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/internal/runlock"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
)

// TrainRecord is TrainConfigFile's content. Its fields are in the order of their JSON names, as the
// file has always been written (sorted keys). Provenance records the command line, model, tokenizer,
// data files with their sha256, timings, t2m version and GPU (eval.Provenance).
type TrainRecord struct {
	BestEvalLoss float64           `json:"best_eval_loss"`
	Config       train.Fingerprint `json:"config"`
	Device       string            `json:"device"`
	// DeviceMemoryPeak and DeviceMemoryPlanned: a GPU backend's memory at the end and before the first step.
	DeviceMemoryPeak    *train.MemoryReport `json:"device_memory_peak,omitempty"`
	DeviceMemoryPlanned *train.MemoryReport `json:"device_memory_planned,omitempty"`
	EffectiveBatchSize  int                 `json:"effective_batch_size"`
	EvalLosses          []float64           `json:"eval_losses"`
	FinalTrainLoss      float64             `json:"final_train_loss"`
	// GradientCheckpointing: activations were recomputed in the backward (TrainOptions.GradientCheckpointing).
	GradientCheckpointing bool `json:"gradient_checkpointing,omitempty"`
	// GPUs is the number of data-parallel ranks (absent: one device).
	GPUs              int      `json:"gpus,omitempty"`
	LoRATargetModules []string `json:"lora_target_modules"`
	Model             string   `json:"model"`
	ModelSource       string   `json:"model_source"`
	// PackTokens: each micro-batch was one row of at most this many tokens, the sequences packed one after
	// the other (train.Run.Pack; 0: a row per sequence, padded).
	PackTokens       int              `json:"pack_tokens,omitempty"`
	Provenance       *eval.Provenance `json:"provenance,omitempty"`
	RunName          string           `json:"run_name"`
	SecondsPerUpdate float64          `json:"seconds_per_update"`
	// Signal: the evaluations during training (--eval-every) and early stopping's best update and value.
	Signal      *SignalRecord `json:"signal,omitempty"`
	Updates     int           `json:"updates"`
	WallSeconds float64       `json:"wall_seconds"`
}

// trainSetUp is a run ready to start: the model, the backend that holds it, and the loop.
type trainSetUp struct {
	runName string
	lock    *runlock.Lock // the run folder's, held until Train returns
	model   *Model
	backend train.Backend
	run     *train.Run
	recomp  bool // --gradient-checkpointing, recorded
}

// setUpTraining reads and tokenizes the splits, loads the model, makes a fresh adapter and the device's
// training backend, and fills the loop's train.Run (Stop left unset). It takes the run folder's lock
// (LockRun) as soon as the run's name is known. On success the caller closes the backend and releases
// the lock.
func setUpTraining(opts TrainOptions, log io.Writer) (_ *trainSetUp, err error) {
	trainEx, _, err := ReadSplit(opts.DataDir, "train", opts.Limit)
	if err != nil {
		return nil, err
	}
	evalEx, _, err := ReadSplit(opts.DataDir, "eval", opts.Limit)
	if err != nil {
		return nil, err
	}
	m, err := LoadModel(withLog(opts.ModelOptions, log), "train")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "model %s loaded (%s)\n", m.Name, m.Loaded)
	start, err := newStartAdapter(opts, m)
	if err != nil {
		return nil, err
	}
	adapter := start.adapter
	runName := opts.RunName
	if runName == "" {
		runName = fmt.Sprintf("%s_r%d", m.Name, adapter.Config.R)
	}
	var lock *runlock.Lock // rank 0's alone in a data-parallel run: the other ranks write nothing
	if rank, _ := train.RankOf(opts.Group); rank == 0 {
		if lock, err = LockRun(filepath.Join(opts.OutputDir, runName), "t2m train"); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	trainSeqs, st, err := data.Tokenize(m.Tok, trainEx, opts.MaxLen)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "train: %d examples, %d kept, %d truncated, %d dropped (prompt ≥ --max-len %d)\n", len(trainEx), st.Kept, st.Truncated, st.Dropped, opts.MaxLen)
	if len(trainSeqs) == 0 {
		return nil, allDropped(len(trainEx), opts)
	}
	evalSeqs, est, err := data.Tokenize(m.Tok, evalEx, opts.MaxLen)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "eval:  %d examples, %d kept, %d truncated, %d dropped\n", len(evalEx), est.Kept, est.Truncated, est.Dropped)
	tokens := 0
	for _, s := range trainSeqs {
		tokens += len(s.IDs)
	}

	w := m.Weights
	lp, err := model.LoRAFromAdapter(adapter)
	if err != nil {
		return nil, err
	}
	lp.Dropout = float32(opts.Dropout)
	params := train.NewParams(lp)
	ready := time.Now()
	backend, pack, err := newTrainBackend(m.Device, w, params, opts.BatchSize, append(append([]data.Sequence{}, trainSeqs...), evalSeqs...),
		opts.GradientCheckpointing, int64(opts.WeightCacheGiB*(1<<30)), log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "training backend %s ready in %s\n", backend.Name(), time.Since(ready).Round(100*time.Millisecond))

	fp := train.Fingerprint{Model: m.Source, Rank: adapter.Config.R, Alpha: adapter.Config.Alpha, Dropout: opts.Dropout,
		Targets: train.TargetsKey(adapter.Config.Targets), InitAdapter: start.path, InitAdapterSHA256: start.sha256,
		Epochs: opts.Epochs, BatchSize: opts.BatchSize, GradAccum: opts.GradAccum, LR: opts.LR,
		Scheduler: opts.scheduler(), WarmupRatio: opts.WarmupRatio, WeightDecay: opts.WeightDecay,
		MaxGradNorm: opts.MaxGradNorm, MaxLen: opts.MaxLen, Seed: opts.Seed,
		TrainSeqs: len(trainSeqs), TrainTokens: tokens, EvalSeqs: len(evalSeqs), Quantization: m.Quant,
		DataSHA256: train.DataSHA256(trainSeqs, evalSeqs)}
	fmt.Fprintln(log, describeRecipe(fp))
	padID := int32(0)
	if id, ok := m.Tok.TokenID(tokenizer.EndOfText); ok {
		padID = int32(id) // Qwen2's pad token
	}
	run := &train.Run{Dir: filepath.Join(opts.OutputDir, runName), Fingerprint: fp, SaveEvery: opts.SaveEvery,
		Bucket: bucketFor(backend), Pack: pack, PadID: padID, Resume: opts.Resume, Adapter: adapter, Params: params, Backend: backend,
		TrainSeqs: trainSeqs, EvalSeqs: evalSeqs, Log: log, Group: opts.Group}
	return &trainSetUp{runName: runName, lock: lock, model: m, backend: backend, run: run, recomp: opts.GradientCheckpointing}, nil
}

// bucketFor is the multiple micro-batch lengths are padded to on backend: a backend that plans its memory
// for one shape and runs any smaller one (train.ShapeReserver: the GPU machine) pads to train.ReservedBucket
// only; the others reuse a graph per length, so lengths repeat at train.DefaultBucket.
func bucketFor(backend train.Backend) int {
	if _, ok := backend.(train.ShapeReserver); ok {
		return train.ReservedBucket
	}
	return train.DefaultBucket
}

// newTrainBackend makes the device's training backend for w and p, with activation recomputation when
// recompute is set and the backend can (train.Recomputer; otherwise a note goes to log), and up to
// cacheBytes of dequantized weight copies where it can keep them (train.WeightCacher). A backend that
// plans its memory for one shape (train.ShapeReserver: the GPU machine) reserves the largest micro-batch
// of seqs, [batch, the longest sequence rounded up to train.ReservedBucket], and unless T2M_PACK=0 packs
// (train.Run.Pack): it then reserves [1, those tokens] and returns them as pack (0: no packing).
func newTrainBackend(device string, w *model.Weights, p *train.Params, batch int, seqs []data.Sequence, recompute bool,
	cacheBytes int64, log io.Writer) (_ train.Backend, pack int, _ error) {
	dev, ok := lookupDevice(device)
	if !ok || dev.NewBackend == nil {
		return nil, 0, fmt.Errorf("no %s backend in this binary", device)
	}
	backend, err := dev.NewBackend(w, p)
	if err != nil {
		return nil, 0, err
	}
	if recompute {
		if r, ok := backend.(train.Recomputer); ok {
			if err := r.SetRecompute(true); err != nil {
				_ = backend.Close()
				return nil, 0, err
			}
		} else {
			fmt.Fprintf(log, "note: --gradient-checkpointing has no effect on the %s backend, which keeps every activation\n", backend.Name())
		}
	}
	if c, ok := backend.(train.WeightCacher); ok && cacheBytes > 0 {
		if err := c.SetWeightCache(cacheBytes); err != nil {
			_ = backend.Close()
			return nil, 0, err
		}
	}
	if r, ok := backend.(train.ShapeReserver); ok {
		longest := 0
		for _, s := range seqs {
			longest = max(longest, len(s.IDs))
		}
		seq := (longest + train.ReservedBucket - 1) / train.ReservedBucket * train.ReservedBucket
		rows := batch
		if train.Packing() {
			rows, seq, pack = 1, batch*seq, batch*seq
		}
		if err := r.Reserve(rows, seq); err != nil {
			_ = backend.Close()
			return nil, 0, err
		}
	}
	return backend, pack, nil
}

// record is what TrainConfigFile says about the finished run.
func (s *trainSetUp) record(res *train.Result, wall time.Duration) TrainRecord {
	fp := s.run.Fingerprint
	return TrainRecord{RunName: s.runName, Model: s.model.Name, ModelSource: s.model.Source, Config: fp,
		GradientCheckpointing: s.recomp, PackTokens: s.run.Pack,
		EffectiveBatchSize: fp.BatchSize * fp.GradAccum, LoRATargetModules: s.run.Adapter.Config.Targets,
		Device: s.backend.Name(), Updates: res.Steps, FinalTrainLoss: res.FinalLoss, EvalLosses: res.EvalLosses,
		BestEvalLoss: res.BestEval, SecondsPerUpdate: res.StepSeconds, WallSeconds: wall.Seconds()}
}

// writeTrainRecord writes rec as indented JSON to path, atomically.
func writeTrainRecord(path string, rec TrainRecord) error {
	return eval.WriteFileAtomic(path, func(bw *bufio.Writer) error {
		enc := json.NewEncoder(bw)
		enc.SetIndent("", "  ")
		return enc.Encode(rec)
	})
}
