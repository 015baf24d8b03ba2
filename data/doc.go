// Package data holds the examples of the text-to-MongoDB task (the JSONL schema of the
// original project), their ChatML prompts, training batches with label masks, and the
// deterministic synthetic data generator behind `t2m data`.
//
// It must not depend on model/, gpu/, train/ or eval/.
package data
