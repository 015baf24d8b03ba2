package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
)

// TokenizerEnv is the environment variable naming the tokenizer.json that a built-in model (tiny, which
// has no tokenizer of its own) uses when --tokenizer is not given.
const TokenizerEnv = "T2M_TOKENIZER"

// ByteMaxLen is the --max-len a built-in model takes with the built-in byte tokenizer when none is
// given: one token per byte makes a prompt of the data set about 1,500 tokens, so data.DefaultMaxLen
// (512, the original's, in Qwen2.5 tokens) would drop every example.
const ByteMaxLen = 2048

// TokenizerChoice is the tokenizer a run uses and where it was found.
type TokenizerChoice struct {
	// Path is the tokenizer.json ("" : the built-in byte tokenizer).
	Path string
	// From says where Path came from: "--tokenizer", "$T2M_TOKENIZER", "--data-dir", "the model
	// directory" or "built in".
	From string
}

// Bytes reports whether the choice is the built-in byte tokenizer.
func (t TokenizerChoice) Bytes() bool { return t.Path == "" }

// String describes the choice for a log line.
func (t TokenizerChoice) String() string {
	if t.Bytes() {
		return fmt.Sprintf("the built-in byte tokenizer (one token per byte; for Qwen2.5's pass --tokenizer FILE, set $%s, or put tokenizer.json in --data-dir)", TokenizerEnv)
	}
	return fmt.Sprintf("%s (from %s)", t.Path, t.From)
}

// FindTokenizer decides the tokenizer of a run of opts.Model over the splits in dataDir: opts.Tokenizer
// when set; for a model directory its own tokenizer.json; for a built-in model (no tokenizer of its own)
// the file $T2M_TOKENIZER names, else dataDir/tokenizer.json when it exists, else the built-in byte
// tokenizer. Nothing outside those places is searched: a run's tokenizer is always one the user put
// there. Passing the result's Path as ModelOptions.Tokenizer (t2m's --tokenizer) reproduces the choice.
func FindTokenizer(opts ModelOptions, dataDir string) TokenizerChoice {
	if opts.Tokenizer != "" {
		return TokenizerChoice{Path: opts.Tokenizer, From: "--tokenizer"}
	}
	if isModelDir(opts.Model) {
		return TokenizerChoice{Path: filepath.Join(opts.Model, "tokenizer.json"), From: "the model directory"}
	}
	if env := os.Getenv(TokenizerEnv); env != "" {
		return TokenizerChoice{Path: env, From: "$" + TokenizerEnv}
	}
	if dataDir != "" {
		p := filepath.Join(dataDir, "tokenizer.json")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return TokenizerChoice{Path: p, From: "--data-dir"}
		}
	}
	return TokenizerChoice{From: "built in"}
}

// allDropped is setUpTraining's error when tokenizing kept no training example: every prompt alone
// reached --max-len. It says what to change.
func allDropped(n int, opts TrainOptions) error {
	hint := "pass a larger --max-len"
	if FindTokenizer(opts.ModelOptions, opts.DataDir).Bytes() {
		hint = fmt.Sprintf("the built-in byte tokenizer spends one token per byte (a prompt of the data set is about 1,500): "+
			"pass --max-len %d, or use Qwen2.5's tokenizer (--tokenizer FILE, $%s, or tokenizer.json in --data-dir)", ByteMaxLen, TokenizerEnv)
	}
	return fmt.Errorf("all %d training examples were dropped: each prompt alone is --max-len %d tokens or more, leaving no completion to learn; %s",
		n, opts.MaxLen, hint)
}
