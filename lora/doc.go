// Package lora holds the LoRA adapter of a Qwen2 model: its configuration and scaling,
// the A [r, in] / B [out, r] pairs of every adapted projection with PEFT's
// initialization (A ~ U(±1/√in), B = 0), and saving/loading in Hugging Face PEFT's
// format (adapter_config.json + adapter_model.safetensors), so adapters move freely
// between t2m and PEFT.
//
// Applying the adapter (y = W·x + b + scaling·B·A·dropout(x)) is the model's job; this
// package only owns the parameters. It depends on the standard library,
// t2m/safetensors and t2m/internal/atomicfile; it must not depend on model/, quant/,
// gpu/ or train/ (the caller passes the base model's dimensions as a function).
package lora
