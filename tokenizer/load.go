package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// gpt2Pattern is the split regex that HF's ByteLevel pre-tokenizer uses when its use_regex is true.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// fileJSON is the part of an HF tokenizer.json that t2m reads.
type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    *componentJSON   `json:"normalizer"`
	PreTokenizer  *componentJSON   `json:"pre_tokenizer"`
	Model         modelJSON        `json:"model"`
	PostProcessor *componentJSON   `json:"post_processor"`
	Decoder       *componentJSON   `json:"decoder"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// componentJSON holds the fields of every normalizer, pre-tokenizer, post-processor and decoder kind that
// t2m supports; Type says which one it is.
type componentJSON struct {
	Type           string          `json:"type"`
	Normalizers    []componentJSON `json:"normalizers"`
	Pretokenizers  []componentJSON `json:"pretokenizers"`
	Decoders       []componentJSON `json:"decoders"`
	Processors     []componentJSON `json:"processors"`
	Pattern        *patternJSON    `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
}

type patternJSON struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// MaxTokenID is the largest token id a tokenizer.json may use: 2^24−1, 100 times the largest vocabulary
// in use (Qwen2's is 151,665). Ids index tables, so an absurd id would only make Load run out of memory.
const MaxTokenID = 1<<24 - 1

// Load reads an HF tokenizer.json (BPE model) and returns a Tokenizer that reproduces HF's ids. Settings
// that t2m does not implement are refused with an error naming them, rather than silently ignored.
func Load(path string) (*Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return parse(path, raw)
}

// parse is Load on the file's bytes; path names it in errors.
func parse(path string, raw []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: %s is not a valid tokenizer.json: %w", path, err)
	}
	t, err := build(&f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// build turns a parsed tokenizer.json into a Tokenizer.
func build(f *fileJSON) (*Tokenizer, error) {
	t := &Tokenizer{cache: newCache(cacheLimit)}
	if err := t.setModel(&f.Model); err != nil {
		return nil, err
	}
	t.initBytes()
	if err := t.setAddedTokens(f.AddedTokens); err != nil {
		return nil, err
	}
	if f.Normalizer != nil {
		forms, err := normalizerForms(f.Normalizer)
		if err != nil {
			return nil, err
		}
		t.normForms = forms
	}
	if f.PreTokenizer != nil {
		if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
			return nil, err
		}
	}
	if err := checkPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if f.Decoder != nil {
		switch f.Decoder.Type {
		case "ByteLevel":
			t.byteLevelDecoder = true
		default:
			return nil, fmt.Errorf("decoder %q is not supported (only ByteLevel or none)", f.Decoder.Type)
		}
	}
	t.normalizedAdded = t.buildNormalizedAdded()
	return t, nil
}

// normalizerForms returns the Unicode normalization forms, applied in order, that a normalizer describes.
func normalizerForms(c *componentJSON) ([]norm.Form, error) {
	switch c.Type {
	case "NFC":
		return []norm.Form{norm.NFC}, nil
	case "NFD":
		return []norm.Form{norm.NFD}, nil
	case "NFKC":
		return []norm.Form{norm.NFKC}, nil
	case "NFKD":
		return []norm.Form{norm.NFKD}, nil
	case "Sequence":
		var forms []norm.Form
		for i := range c.Normalizers {
			sub, err := normalizerForms(&c.Normalizers[i])
			if err != nil {
				return nil, err
			}
			forms = append(forms, sub...)
		}
		return forms, nil
	}
	return nil, fmt.Errorf("normalizer %q is not supported (only NFC, NFD, NFKC, NFKD and Sequence)", c.Type)
}

// setPreTokenizer reads a Split pre-tokenizer, a ByteLevel one, or a Sequence of them.
func (t *Tokenizer) setPreTokenizer(c *componentJSON) error {
	switch c.Type {
	case "Sequence":
		for i := range c.Pretokenizers {
			if err := t.setPreTokenizer(&c.Pretokenizers[i]); err != nil {
				return err
			}
		}
		return nil
	case "Split":
		if c.Behavior != "Isolated" || c.Invert {
			return fmt.Errorf("Split pre-tokenizer with behavior %q, invert %v is not supported (only Isolated, false)",
				c.Behavior, c.Invert)
		}
		if c.Pattern == nil {
			return fmt.Errorf("Split pre-tokenizer has no pattern")
		}
		var expr string
		switch {
		case c.Pattern.Regex != nil:
			expr = *c.Pattern.Regex
		case c.Pattern.String != nil:
			expr = regexp2.Escape(*c.Pattern.String)
		default:
			return fmt.Errorf("Split pre-tokenizer pattern has neither Regex nor String")
		}
		return t.addSplit(expr)
	case "ByteLevel":
		if t.byteLevel {
			return fmt.Errorf("two ByteLevel pre-tokenizers")
		}
		if c.AddPrefixSpace {
			return fmt.Errorf("ByteLevel pre-tokenizer with add_prefix_space true is not supported")
		}
		if c.UseRegex == nil || *c.UseRegex { // HF's default is true
			if err := t.addSplit(gpt2Pattern); err != nil {
				return err
			}
		}
		t.byteLevel = true
		return nil
	}
	return fmt.Errorf("pre-tokenizer %q is not supported (only Split, ByteLevel and Sequence)", c.Type)
}

// addSplit compiles a split regex. Splits run in order, each on the pieces of the one before.
func (t *Tokenizer) addSplit(expr string) error {
	if t.byteLevel {
		// HF applies later splits to byte-level symbols; no known tokenizer does that, so refuse it.
		return fmt.Errorf("a Split pre-tokenizer after ByteLevel is not supported")
	}
	split, err := newSplitter(expr)
	if err != nil {
		return fmt.Errorf("pre-tokenizer regex %q: %w", expr, err)
	}
	t.splits = append(t.splits, split)
	return nil
}

// checkPostProcessor accepts only post-processors that add no ids (ByteLevel only changes offsets).
func checkPostProcessor(c *componentJSON) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		for i := range c.Processors {
			if err := checkPostProcessor(&c.Processors[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("post-processor %q is not supported (only ByteLevel or none)", c.Type)
}

// setModel reads the BPE vocabulary and merges.
func (t *Tokenizer) setModel(m *modelJSON) error {
	if m.Type != "" && m.Type != "BPE" {
		return fmt.Errorf("model %q is not supported (only BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return fmt.Errorf("BPE dropout %v is not supported", *m.Dropout)
	}
	if m.ByteFallback {
		return fmt.Errorf("BPE byte_fallback is not supported")
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") ||
		(m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return fmt.Errorf("BPE continuing_subword_prefix / end_of_word_suffix are not supported")
	}
	if len(m.Vocab) == 0 {
		return fmt.Errorf("BPE model has an empty vocabulary")
	}
	t.vocab = m.Vocab
	maxID := -1
	for tok, id := range m.Vocab {
		if id < 0 || id > MaxTokenID {
			return fmt.Errorf("vocabulary token %q has id %d, outside [0, %d]: the file is damaged", tok, id, MaxTokenID)
		}
		maxID = max(maxID, id)
	}
	t.idToToken = make([]string, maxID+1)
	t.hasID = make([]bool, maxID+1)
	for tok, id := range m.Vocab {
		t.idToToken[id] = tok
		t.hasID[id] = true
	}
	t.unkID = -1
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return fmt.Errorf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.unkID, t.fuseUnk = id, m.FuseUnk
	}
	t.ignoreMerges = m.IgnoreMerges
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return err
	}
	if len(pairs) == 0 && !m.IgnoreMerges {
		// Without merges BPE never produces a token longer than one symbol: every text would be cut into
		// single bytes, silently (a truncated or hand-edited file).
		for tok := range m.Vocab {
			if utf8.RuneCountInString(tok) > 1 {
				return fmt.Errorf("BPE model has no merges, but its vocabulary has multi-symbol tokens such as %q that only merges produce: "+
					"the file looks truncated; use the tokenizer.json that came with the model", tok)
			}
		}
	}
	t.merges = make(map[uint64]merge, len(pairs))
	for rank, p := range pairs {
		a, okA := m.Vocab[p[0]]
		b, okB := m.Vocab[p[1]]
		c, okC := m.Vocab[p[0]+p[1]]
		if !okA || !okB || !okC {
			return fmt.Errorf("merge %d (%q %q) uses a token missing from the vocabulary", rank, p[0], p[1])
		}
		// A repeated merge keeps its last rank, as in HF (its merge map is collected in order).
		t.merges[pairKey(a, b)] = merge{rank: int32(rank), id: int32(c)}
	}
	return nil
}

// parseMerges accepts both merge formats: ["a b", ...] (older files) and [["a", "b"], ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var asPairs [][2]string
	if err := json.Unmarshal(raw, &asPairs); err == nil {
		return asPairs, nil
	}
	var asStrings []string
	if err := json.Unmarshal(raw, &asStrings); err != nil {
		return nil, fmt.Errorf("BPE merges are neither [\"a b\", ...] nor [[\"a\", \"b\"], ...]: %w", err)
	}
	pairs := make([][2]string, len(asStrings))
	for i, s := range asStrings {
		a, b, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("BPE merge %d %q has no space between its two tokens", i, s)
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs, nil
}

// setAddedTokens registers the added tokens; their ids may extend past the model vocabulary.
func (t *Tokenizer) setAddedTokens(tokens []addedTokenJSON) error {
	t.addedIDs = make(map[string]int, len(tokens))
	for _, a := range tokens {
		if a.Content == "" {
			return fmt.Errorf("added token %d has empty content", a.ID)
		}
		if a.ID < 0 || a.ID > MaxTokenID {
			return fmt.Errorf("added token %q has id %d, outside [0, %d]: the file is damaged", a.Content, a.ID, MaxTokenID)
		}
		if a.SingleWord || a.LStrip || a.RStrip {
			return fmt.Errorf("added token %q: single_word, lstrip and rstrip are not supported", a.Content)
		}
		for a.ID >= len(t.idToToken) {
			t.idToToken = append(t.idToToken, "")
			t.hasID = append(t.hasID, false)
		}
		t.idToToken[a.ID] = a.Content
		t.hasID[a.ID] = true
		t.addedIDs[a.Content] = a.ID
		tok := addedToken{content: a.Content, id: a.ID}
		if a.Normalized {
			t.normalizedSource = append(t.normalizedSource, tok)
		} else {
			t.rawAdded.add(tok)
		}
	}
	return nil
}

// buildNormalizedAdded makes the matcher of normalized added tokens; HF matches them, in their normalized
// form, on the normalized text.
func (t *Tokenizer) buildNormalizedAdded() addedMatcher {
	var m addedMatcher
	for _, a := range t.normalizedSource {
		m.add(addedToken{content: t.normalize(a.content), id: a.id})
	}
	return m
}

// RequireAdded checks that each token is an added token of t (matched whole in raw text, never split), as
// the ChatML markers must be for the prompts to tokenize as the model was trained. A tokenizer.json
// whose added_tokens lack them would turn "<|im_start|>" into a dozen ordinary tokens without an error.
func (t *Tokenizer) RequireAdded(tokens ...string) error {
	var missing []string
	for _, tok := range tokens {
		if _, ok := t.addedIDs[tok]; !ok {
			missing = append(missing, tok)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("tokenizer: %s not among its added_tokens: this is not a chat (ChatML) tokenizer, or its added_tokens were lost; use the model's own tokenizer.json",
			strings.Join(missing, ", "))
	}
	return nil
}
