// Package train is t2m's QLoRA training loop, the Go counterpart of the original pipeline's TRL
// SFTTrainer run: completion-only causal-LM loss on ChatML prompts, LoRA on q/k/v/o/gate/up of a frozen
// (optionally NF4) Qwen2, AdamW (torch semantics, fp32 moments) with HF's cosine schedule and warmup,
// gradient accumulation with the loss normalized by the completion tokens of the whole accumulation
// window (HF's num_items_in_batch), global gradient-norm clipping, an eval loss per epoch, the adapter of
// the best epoch kept (load_best_model_at_end on eval_loss), metrics.jsonl, and resumable checkpoints
// written atomically.
//
// The model runs behind Backend: Loss(micro-batch, shape, dropout step, grads) returns the loss and adds
// the LoRA gradients, keeping whatever it compiles per (batch, seq) shape; each update's sequences are
// sorted longest first before they are cut into micro-batches (the update sums the same sequences; rows of
// like length pad less), and micro-batches are padded to a multiple of Run.Bucket so shapes repeat. With
// Run.Pack (the pipeline sets it for a backend that reserves one shape: the GPU machine) each micro-batch is
// instead one row of the update's sequences packed one after the other (pack.go: segments in the attention
// mask, positions from 0), spread over the update's micro-batches so that they fill whole row tiles; the
// sums, and so the losses and gradients, are the same. The CPU backend builds model.Build/BuildGrad graphs, keeps the three most recently used per kind, and runs them
// with gorgonia's TapeMachine.
//
// Signal during training: with Run.EvalEvery, Run.Evaluate (a hook the pipeline provides, which generates
// and scores: this package does neither) is called every EvalEvery updates with the live LoRA values; its
// rates go to metrics.jsonl, and with Run.EarlyStopping the run stops after that many evaluations without
// improvement of one rate, keeping the best evaluation's adapter (the checkpoint keeps the last state and
// the early-stopping state, so --resume continues it). Evaluating reads the parameters only: the
// training's numbers are those of a run without it.
//
// Devices: this package holds t2m's one device registry (registry.go). Each Device offers, under its
// --device name, a training BackendFactory, a GeneratorFactory for greedy decoding and a usability check.
// "cpu" is built in (the CPU backend and model.Generator); the t2mcuda build's gpu package registers
// "cuda" with RegisterDevice from an init (gpu/backend_cuda.go, wrapping gpu/machine and gpu's decoder). A
// training factory gets the weights and the Params, whose slices it must read before each step (the
// optimizer updates them in place on the host) — or, as a DeviceOptimizer, it takes over the gradient sums,
// clipping and AdamW on its device, and Updater (updater.go) brings Params up to date only when the host
// reads them (checkpoints, the adapter, evaluations).
// The pipelines (package pipeline) consult the registry; `t2m train --device auto` picks "cuda" when it
// is registered and usable.
//
// Determinism: epoch e shuffles with data.Shuffle(seed+e), each update's window then sorted by length
// (stable); the dropout masks of micro-batch k of update s
// are seeded with s·GradAccum+k; so a checkpoint needs no RNG state beyond the seed, and a resumed run is
// bitwise the uninterrupted one (TestResumeIsExact).
//
// This package must not import gpu/ (nor cmd/ or eval/), so the default build needs no CUDA.
package train
