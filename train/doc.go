// Package train is t2m's QLoRA training loop, the Go counterpart of the original pipeline's TRL
// SFTTrainer run: completion-only causal-LM loss on ChatML prompts, LoRA on q/k/v/o/gate/up of a frozen
// (optionally NF4) Qwen2, AdamW (torch semantics, fp32 moments) with HF's cosine schedule and warmup,
// gradient accumulation with the loss normalized by the completion tokens of the whole accumulation
// window (HF's num_items_in_batch), global gradient-norm clipping, an eval loss per epoch, the adapter of
// the best epoch kept (load_best_model_at_end on eval_loss), metrics.jsonl, and resumable checkpoints
// written atomically.
//
// The model runs behind Backend: it builds a Step per micro-batch shape that returns the loss and adds
// the LoRA gradients. The CPU backend (registered here as "cpu") builds model.Build/BuildGrad graphs and
// runs them with gorgonia's TapeMachine. A GPU backend registers itself with RegisterBackend("cuda", …)
// from the CUDA build; this package must not import gpu/ (nor cmd/ or eval/), so the default build needs
// no CUDA.
package train
