// Package ops holds the launchers of t2m's CUDA kernels (kernels/*.cu), one file per kernel, each beside
// its parity test against the op's CPU twin in model/ (random inputs, poisoned outputs). A launcher
// validates shapes and buffer sizes (kernArgs in launch.go) and calls cuda.Device.Launch on the device's
// stream; it allocates nothing. Everything but the NF4 host layout (nf4_ref.go, nf4_quant.go) is behind the
// t2mcuda build tag.
//
//   - rmsnorm.go, rope.go, attention.go (flash-style causal GQA, forward and backward), swiglu.go,
//     residual.go, embedding.go, crossentropy.go (lm_head fused with the masked cross-entropy), dropout.go
//     (model.DropoutKeep's mask bit for bit), scatter_rows.go (the head rows' gather, by the embedding
//     kernel, and scatter): the model's ops, forward and backward.
//   - adamw.go, gradnorm.go: the optimizer over flat fp32 LoRA parameters (global-norm clip, AdamW).
//   - nf4.go: NF4Weight (device), UploadNF4 of an NF4Host (NF4HostFromQuant), DequantNF4 (kernel
//     nf4_dequant_bf16; its CPU twin is quant's (*Weight).Dequantize, which also owns the NF4 table), and the
//     random fills of benchmarks (FillRandomU8, FillRandomBF16; CPU twins cuda.RandomU8CPU, RandomBF16CPU).
//   - nf4_quantize.go: QuantizeNF4, NF4 double quantization of a bf16/f16/f32 weight on the device, byte for
//     byte quant.QuantizeRaw (its twin); nf4_gemv.go: NF4 codes × a few rows without dequantizing.
//   - kv_append.go, decode_attention.go, argmax.go: the decoding kernels (their parity tests are
//     decode_attention_test.go and argmax_test.go); f32_to_bf16.go: the fp32 → bf16 rounding the decoder's
//     per-use LoRA output takes.
//
// Adding an op: kernels/<op>.cu (+ `make kernels`), gpu/ops/<op>.go with a launcher that validates shapes
// and calls d.Launch, gpu/ops/<op>_test.go comparing with the op's CPU function of model/.
package ops
