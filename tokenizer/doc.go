// Package tokenizer is t2m's Qwen2 tokenizer: a byte-level BPE that reads a Hugging Face tokenizer.json and
// gives the same ids as the HF `tokenizers` library on every input.
//
// Encoding follows HF's pipeline step by step, driven by the settings in tokenizer.json:
//
//  1. added tokens (<|im_start|>, <|im_end|>, <|endoftext|>, ...) are found in the raw text, leftmost-longest,
//     and are never split or normalized;
//  2. the text between them is normalized (NFC for Qwen2);
//  3. the Split pre-tokenizer cuts it with its regex. Qwen's has a lookahead, which Go's regexp lacks:
//     other patterns run on github.com/dlclark/regexp2, Qwen2's on a hand-written scanner (pretokenize.go)
//     that tests and a fuzz target check against regexp2;
//  4. the ByteLevel step maps each UTF-8 byte to one symbol of GPT-2's printable byte alphabet;
//  5. BPE merges each pre-token's symbols by rank (lowest rank first, then leftmost), with a cache per
//     pre-token.
//
// Decoding maps tokens back to bytes (ByteLevel decoder) and turns invalid UTF-8 into U+FFFD the way Rust's
// String::from_utf8_lossy does. Added tokens decode to their text (HF's skip_special_tokens=false).
//
// The reference ids in testdata/hf_ids.json come from scripts/fixtures/make_tokenizer_fixture.py.
//
// This package must not depend on any other t2m package, on the model, or on cgo: data preparation and
// prompt rendering use it on machines without a GPU.
package tokenizer
