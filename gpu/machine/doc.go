// Package machine is the GPU machine: it executes the model's gorgonia graph on a cuda.Device with the
// launchers of gpu/ops, for training (forward, loss, backward, optimizer step) and evaluation, and plans
// its activation memory (plan.go, untagged: the planner is plain Go and tested in every build).
//
// The model is one gorgonia ExprGraph whose nodes are coarse custom ops (model/doc.go lists each op and its
// CPU function); gorgonia.Grad adds the backward nodes. Machine executes that same graph:
//
//	m, err := machine.New(d, g, arenaBytes) // g from model.Build (+ g.BuildGrad() for training)
//	err = m.Run(batch)                      // forward (+ loss and backward); no host round trip
//	err = m.Step(hyper, maxNorm)            // global grad-norm clip + AdamW on the flat LoRA params
//	loss, err := m.Output(g.Loss)           // the one download of a training step
//
// How it works:
//
//  1. Compile once per (batch, length) shape (New): the graph's topological order (gorgonia.Sort,
//     reversed), each node's input positions, and for every op its launcher: frozen weights uploaded once
//     (NF4 stays NF4; float32 becomes bf16), norm weights and biases as bf16 vectors, per-node extras
//     (attention's lse, LoRA temporaries). An op without a launcher is an error naming it, never a silent
//     CPU fallback. LoRA dropout (DropoutOp, LoRAGradOp 'X') runs with the CPU's mask bit for bit
//     (model.DropoutKeep's counter hash, kernels/dropout.cu).
//  2. Liveness (Liveness): a node's output lives from its step to its last reader's step; slices of the
//     packed attention gradient are views whose readers keep the packed buffer alive; attention's backward
//     also keeps the forward's output. Graph inputs, LoRA parameters/gradients (flat, for the optimizer),
//     the fused loss outputs and kept nodes are not planned.
//  3. Memory plan (PlanMemory): greedy by size, best fit among the tensors whose lifetimes intersect,
//     256-byte aligned (cuda.Align), in one arena region reserved before the first launch, so an
//     out-of-memory shows at New. On the tiny model the plan equals its lower bound (the most bytes live at
//     one step).
//  4. Execute (Run): for each node in order one launcher (kernel or cuBLAS) on the device's stream. NF4
//     linears dequantize into one shared scratch right before their GEMM, in the forward and again in
//     the backward, except those kept as bf16 copies (Options.WeightCacheBytes: smallest first, uploaded
//     after the plan so the cache takes only memory the plan leaves; machine_cache.go). The lm_head +
//     cross-entropy is one fused call over the micro-batch's target rows, gathered, that writes the loss and
//     dh, run at whichever of the loss node and its gradient node comes first. A LoRA linear writes its small terms
//     first (q/k/v biases as a K = 1 GEMM ones·biasᵀ, then s·(xl·Aᵀ)·Bᵀ) and the base GEMM adds onto them
//     with beta = 1 (ops.Linear). gorgonia's own "+" nodes (gradient sums) are AddBF16; where one term is a
//     LoRA dropout's backward that only the sum reads, the sum runs it (ops.DropoutAdd), and where that
//     dropout's input is the LoRA branch's input gradient s·(dy·B)·A read by nothing else, the sum computes
//     that too (ops.LoRADropoutAdd), so neither is written (machine_fuse.go). A sum whose term is a GEMM's
//     input gradient that only it reads runs that GEMM in place onto the other term (beta = 1, the sum a
//     view of its buffer), and one whose term is RMSNorm's backward adds the residual gradient inside the
//     norm's kernel (foldSums, machine_fold.go). RoPE takes one (cos, sin) table per Run; each LoRA linear
//     keeps h = xl·Aᵀ from its forward; at ranks 8 and 16 the first backward launch that needs g = dy·B
//     makes it together with dB = s·dyᵀ·h in one walk over dy, and dA = s·gᵀ·xl is one more (ops.LoRAGrad);
//     elsewhere g comes from cuBLAS once and is reused. There, too, a LoRA dropout read only by its linear's
//     LoRA branch writes nothing: h and dA read its input and drop it as they go (readDropouts). Attention's
//     backward runs its dQ kernel on a side stream beside the dK/dV one.
//  5. Optimizer (Step, StepSum): the LoRA matrices live in flat buffers (fp32 masters, bf16 copies the
//     forward reads, fp32 gradients the LoRA gradient nodes write, their sum over an update's micro-batches
//     and AdamW's moments), so summing a micro-batch's gradients, clipping and AdamW are one launch each.
//  6. Shapes and memory: the plan is made for the graph's [B, T]; a Run may be any smaller [rows, seq]
//     (RunOptions), every launch then covering rows·seq rows of the same buffers. In a ModeLossHeadRows graph
//     the nodes after the last layer's attention and their gradients (markHeadRows, machine_head.go) cover
//     only the Run's head rows: model.HeadRows of the Run's labels, uploaded with them, gathered by the
//     embedding kernel with the activation as its table and scattered back by ops.ScatterRows; their LoRA
//     dropout draws the CPU's mask over the gathered layout. With Options.Recompute
//     (gradient checkpointing), RecomputeSchedule repeats each layer's forward launches that the backward
//     reads right before the layer's backward, from the layer's input (g.Hidden), so the plan holds one
//     layer's activations instead of all of them.
//
// Tests: TestMachineLogits (tiny Qwen2, bf16/NF4/NF4+LoRA, every layer's hidden state and the logits vs
// the CPU TapeMachine), TestMachineLossGrads (loss and all LoRA gradients vs the CPU; with LoRA dropout, and
// at ranks 8 and 16, whose fused sums have their own kernels), TestMachineHeadRowsLossGrads (the same in
// ModeLossHeadRows, at the graph's shape and a smaller one, with and without dropout, ranks 4 and 8), TestMachineStep
// (grad norm and AdamW update vs a float64 host computation; loss goes down), TestMachineFixture (the tiny
// Qwen2 of model/testdata/qwen2_tiny against its HF transformers/PEFT references: hidden states, logits,
// loss, gradients), and the planner's tests (plan_test.go, every build).
//
// The "cuda" training backend (gpu/train_backend_cuda.go) drives one Machine.
package machine
