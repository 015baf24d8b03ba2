// Package quant implements NF4 4-bit quantization with double quantization in the
// bitsandbytes layout (QLoRA, https://arxiv.org/abs/2305.14314), so that t2m's own
// quantization and pre-quantized "bnb-4bit" checkpoints share one representation:
//
//   - the row-major [out, in] weight is cut into blocks of 64 elements; each block's
//     absmax scales it to [-1, 1] (x · (1/absmax) in float32, as bitsandbytes' CUDA
//     kernel does) and each element gets the 4-bit index of the nearest NF4 value
//     (decided, as bitsandbytes does, against its 15 thresholds at the midpoints of
//     the table, a tie going to the lower code);
//   - two codes per byte, element 2j in the high nibble;
//   - double quantization: offset = mean(absmax); (absmax − offset) is quantized in
//     blocks of 256 to uint8 indices into the signed dynamic map of
//     bitsandbytes.functional.create_dynamic_map, with one float32 absmax per block;
//   - W[e] = NF4[code(e)] × (dyn[q[e/64]] × nested_absmax[e/16384] + offset).
//
// Compatibility: pre-quantized checkpoints are read as stored (maps included), so
// their dequantization is exactly bitsandbytes'. Quantizing here follows bitsandbytes'
// decisions with IEEE float32 arithmetic; its CUDA build uses --use_fast_math (an
// approximate 1/absmax) and a float32 GPU reduction for the offset, so for values
// within an ulp of a threshold a code or absmax index can differ from what
// bitsandbytes would produce. quant/testdata/nf4_ref.safetensors, written by
// scripts/fixtures/make_nf4_fixture.py (an independent torch implementation), pins the
// exact behaviour.
//
// It depends only on the standard library and t2m/safetensors; it must not depend on
// model/, lora/, gpu/ or train/.
package quant
