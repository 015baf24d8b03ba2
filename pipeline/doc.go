// Package pipeline holds t2m's end-to-end runs as a library: Train (the QLoRA fine-tune that `t2m train`
// runs) and Evaluate (the zero-shot baseline and the evaluation of an adapter, `t2m baseline` and
// `t2m eval`), with LoadModel, ResolveDevice, ReadSplit and CheckRunName that they share. A Go program
// calls them with options that mirror the command-line flags (zero values are the flags' defaults where
// the field says so); progress goes to the options' Log writer, results come back as values and files
// under OutputDir/<run>.
//
// Dependencies point one way: cmd/t2m (flags and printing) → pipeline → model, lora, data, tokenizer,
// eval, train. The device a run uses comes from train's device registry (train.LookupDevice), which
// offers per device name a training backend factory, a generator factory and a usability check: "cpu"
// is built in, the t2mcuda build's gpu package registers "cuda". This package does not import gpu.
//
// Error messages name the t2m flags that correspond to option fields (--max-len for MaxLen, ...), so
// the command line reports them unchanged.
package pipeline
