// Package model is Qwen2 for t2m: the config (both config.json generations) and a registry of named
// models, the weights read from Hugging Face safetensors by checkpoint name (optionally quantized to NF4
// at load), and the forward pass as a gorgonia ExprGraph of coarse custom ops whose symbolic derivatives
// let gorgonia.Grad build the LoRA backward pass. Each op's math is an exported pure-Go function on
// float32 slices: the CPU executor (gorgonia's TapeMachine) calls it, and each GPU kernel is tested
// against it.
//
// It must not depend on gpu/ (the GPU machine walks this package's graph, not the reverse), nor on cmd/,
// train/ or eval/. It may use safetensors/, quant/ and lora/.
//
// Layout: hidden states are row-major [N, H] with N = B·T and row b·T + t; token ids, positions, the
// attention mask (1 token, 0 padding) and labels (in ModeLossHeadRows also the head rows' index and
// labels) are int32 [B, T] graph inputs; the LoRA matrices A [r, in] and B [out, r] are float32 graph
// inputs (the only differentiable ones); numItems is a float32 scalar input. Frozen weights (embeddings,
// norms, projections, biases, lm_head) belong to the ops.
//
// # Ops
//
//	op (node's Op type)       CPU function                     inputs → output; attributes
//	EmbeddingOp               EmbeddingForward                 ids i32[B,T] → [N,H]; Table [V,H]. No grad.
//	RMSNormOp                 RMSNormForward                   x[N,H] → [N,H]; Weight[H], Eps. y = x·rsqrt(mean(x²)+eps)·w
//	RMSNormGradOp             RMSNormBackward                  x, dy [N,H] → dx [N,H]
//	LinearOp                  LinearLoRAForward                x[N,in] (+A[r,in], B[out,r]) → [N,out]; Weight (*Frozen
//	                                                           f32 or NF4) [out,in], Bias[out]|nil, Rank, Scaling.
//	                                                           y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ
//	  with Split (training)   LinearLoRAForwardSplit           x, A, B, xl=dropout(x) → x·Wᵀ + b + s·(xl·Aᵀ)·Bᵀ
//	LinearGradInputOp         LinearLoRABackward (dx only)     dy[N,out] (+A, B) → dx[N,in] = dy·W + s·(dy·B)·A;
//	                                                           dy alone (no LoRA, or Split) → dx = dy·W
//	LoRAGradOp{WRT 'A'|'B'}   LinearLoRABackwardSplit          xl, dy, A, B → dA[r,in] = s·(dy·B)ᵀ·xl | dB[out,r] = s·dyᵀ·(xl·Aᵀ)
//	LoRAGradOp{WRT 'X'}       LinearLoRABackwardSplit          xl, dy, A, B → dxl[N,in] = s·(dy·B)·A (Split only)
//	DropoutOp                 DropoutForward                   x[N,in] → x·keep/(1−P); keep_i = DropoutKeep(DropoutSeed(
//	                                                           State.Step, Name), i, P): DropoutHash (lowbias32 of a
//	                                                           per-seed Weyl sequence) ≥ ⌈P·2³²⌉;
//	                                                           backward = same op (Grad: true) on dy, same mask
//	RoPEOp                    RoPEForward / RoPEBackward       x[N,heads·D], positions i32[B,T] → same; Heads, HeadDim, Theta,
//	                                                           Inverse (backward = same op with Inverse flipped)
//	AttentionOp               AttentionForward                 q[N,Hq·D], k, v[N,Hkv·D], mask i32[B,T] → [N,Hq·D]; causal,
//	                                                           GQA (head h reads KV head h/(Hq/Hkv)), scale D^−0.5, fp32
//	                                                           softmax, masked keys; all-masked query rows → 0
//	AttentionGradOp           AttentionBackward                q, k, v, mask, dy → 1-D packed dq | dk | dv
//	SliceOp                   (view)                           1-D → Shape at Offset (cuts the packed gradients)
//	SwiGLUOp                  SwiGLUForward                    gate, up [N,I] → silu(gate)·up
//	SwiGLUGradOp{WRT 0|1}     SwiGLUBackward                   gate, up, dy → dgate | dup
//	AddOp                     AddForward                       a, b → a+b (residual); grad passes to both
//	GatherRowsOp              GatherRows                       x[N,C], index i32[B,T] → [B·T,C]; y[p] = x[index[p]], 0 for
//	                                                           −1 (ModeLossHeadRows: the rows the head reads, HeadRows)
//	ScatterRowsOp             ScatterRows                      dy[B·T,C], index → dx[N,C] = 0, dx[index[p]] = dy[p]; Rows
//	LMHeadOp                  LinearLoRAForward (no bias)      h[N,H] → logits[N,V] (inference only)
//	LMHeadCrossEntropyOp      LMHeadCrossEntropyForward        h[N,H], labels i32[B,T], numItems f32 → f32 loss =
//	                                                           Σ CE(W·h_n, labels[b,t+1]) over labels ≠ −100 / numItems
//	LMHeadCrossEntropyGradOp  LMHeadCrossEntropyBackward       h, labels, numItems, dloss → dh[N,H]
//
// An executor gets a node's inputs in order with Inputs(n); TestTrainingGraphOps checks that a training
// graph holds nothing but the ops above, inputs, and the two gorgonia nodes below.
// gorgonia.Grad also inserts its own element-wise additions (gorgonia's "+" op on two [N,H] or [N,in]
// tensors) where a node feeds several consumers, to sum their gradients; the loss gradient seed is
// gorgonia's float32 constant 1.
package model
