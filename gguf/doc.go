// Package gguf writes and reads GGUF files, the model format of llama.cpp and ollama (version 3, little
// endian), as specified in ggml's docs/gguf.md:
//
//	magic "GGUF" | version uint32 (3) | tensor count uint64 | metadata count uint64
//	metadata: key (string) | value type uint32 | value          string = length uint64 + UTF-8 bytes
//	tensor infos: name | dims uint32 | ne[dims] uint64 | ggml type uint32 | offset uint64 (from the data start)
//	padding to general.alignment (32) | tensor data, each tensor starting at a multiple of the alignment
//
// ne[0] is the fastest-varying dimension: a row-major PyTorch weight [out, in] is ne = [in, out] with the
// same bytes. Tensor types written here: F32, F16, BF16 and Q8_0 (blocks of 32 values: an fp16 scale
// d = max|x|/127, then 32 int8 round(x/d), as ggml's quantize_row_q8_0_ref).
//
// t2m writes the format itself because no maintained Go GGUF writer exists (the Go GGUF code we found
// either only parses, or buffers the whole file in memory, or lives inside a larger program). Write
// streams: the header is computed from the tensor shapes, then each tensor's bytes are produced on demand,
// so a 7B model never has to be held twice. The Qwen2 mapping (tensor names, metadata keys, tokenizer)
// lives with the caller (pipeline.ExportGGUF); this package knows only the container.
package gguf
