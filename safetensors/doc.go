// Package safetensors reads and writes Hugging Face safetensors files: single files
// memory-mapped read-only, sharded checkpoints through model.safetensors.index.json,
// and atomic writes whose layout matches the Python library (header padded with spaces
// to 8 bytes, tensors ordered by dtype, largest first, then name; checked against a
// file Python wrote, apart from metadata key order). It also decodes F32, BF16 and F16
// tensor bytes to float32 (DecodeFloat32, F16ToFloat32); the bf16 rounding itself is
// internal/bf16's, shared with the GPU code.
//
// The format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {string: string}}, then the data section; offsets are relative to
// the data section, and tensors tile it exactly (no gaps, no overlap).
//
// ARCHITECTURE.md lists no such top-level package: it exists because model/, quant/
// and lora/ all read or write safetensors and must not depend on one another for it.
// It must depend on nothing in t2m but internal/atomicfile (standard library only).
package safetensors
