// Package atomicfile writes files and folders that, after any interruption (an error,
// a kill, a power cut), hold either the old version or the complete new one, never a
// mix or a half-written file: reports, data splits, safetensors files, LoRA adapters
// and training checkpoints all go through it.
//
// WriteFile fills a temporary file beside the target, fsyncs it, renames it over the
// target and fsyncs the directory. ReplaceDir builds a new folder beside the target,
// moves the old folder aside to <dir>.old, renames the new one into place and only
// then removes <dir>.old; a reader that finds <dir> missing after a crash finds the
// previous version complete in <dir>.old. On any error neither leaves temporary
// files or folders behind.
//
// It depends only on the standard library, so that every t2m package may use it.
package atomicfile
