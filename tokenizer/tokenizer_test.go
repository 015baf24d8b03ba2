package tokenizer

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Shared material beside the clone (see ../shared/guide/ARCHITECTURE.md); tests read it in place.
const (
	qwenTokenizerPath = "../../shared/tokenizers/qwen2.5/tokenizer.json"
	sharedDataDir     = "../../shared/data/text-to-mongo"
	fixturePath       = "testdata/hf_ids.json"
)

var sharedSplits = []string{"train.jsonl", "eval.jsonl", "held_out.jsonl"}

// hfFixture is what scripts/fixtures/make_tokenizer_fixture.py writes.
type hfFixture struct {
	Source    string `json:"source"`
	VocabSize int    `json:"vocab_size"`
	Cases     []struct {
		Name    string `json:"name"`
		Text    string `json:"text"`
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	} `json:"cases"`
	DecodeCases []struct {
		Name    string `json:"name"`
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	} `json:"decode_cases"`
	Intents map[string][]struct {
		N   int    `json:"n"`
		SHA string `json:"sha"`
	} `json:"intents"`
}

var (
	qwenOnce sync.Once
	qwenTok  *Tokenizer
	qwenErr  error
)

// qwen loads the real Qwen2.5 tokenizer once per test binary.
func qwen(tb testing.TB) *Tokenizer {
	tb.Helper()
	qwenOnce.Do(func() { qwenTok, qwenErr = Load(qwenTokenizerPath) })
	if qwenErr != nil {
		tb.Fatalf("%v (the shared material must be checked out beside the repository)", qwenErr)
	}
	return qwenTok
}

func loadFixture(tb testing.TB) *hfFixture {
	tb.Helper()
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		tb.Fatal(err)
	}
	var f hfFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		tb.Fatalf("%s: %v", fixturePath, err)
	}
	if len(f.Cases) == 0 {
		tb.Fatalf("%s has no cases", fixturePath)
	}
	return &f
}

// tokens renders ids as their vocabulary strings, for failure messages.
func tokens(tok *Tokenizer, ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && id < len(tok.idToToken) {
			parts[i] = fmt.Sprintf("%d:%q", id, tok.idToToken[id])
		} else {
			parts[i] = fmt.Sprintf("%d:?", id)
		}
	}
	return strings.Join(parts, " ")
}

func equalIDs(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHFFixtureEncode(t *testing.T) {
	tok, fx := qwen(t), loadFixture(t)
	for _, c := range fx.Cases {
		got := tok.Encode(c.Text)
		if !equalIDs(got, c.IDs) {
			t.Errorf("%s: Encode(%q)\n got  %s\n want %s", c.Name, c.Text, tokens(tok, got), tokens(tok, c.IDs))
		}
	}
}

func TestHFFixtureDecode(t *testing.T) {
	tok, fx := qwen(t), loadFixture(t)
	for _, c := range fx.Cases {
		if got := tok.Decode(c.IDs); got != c.Decoded {
			t.Errorf("%s: Decode = %q, HF decodes %q", c.Name, got, c.Decoded)
		}
		// Round trip: the text comes back, normalized outside added tokens.
		if got, want := tok.Decode(tok.Encode(c.Text)), normalizedOutsideAdded(tok, c.Text); got != want {
			t.Errorf("%s: Decode(Encode(%q)) = %q, want %q", c.Name, c.Text, got, want)
		}
	}
	for _, c := range fx.DecodeCases {
		if got := tok.Decode(c.IDs); got != c.Decoded {
			t.Errorf("%s: Decode(%v) = %q, HF decodes %q", c.Name, c.IDs, got, c.Decoded)
		}
	}
}

// normalizedOutsideAdded is text with NFC applied to each stretch between added tokens, which is what
// decoding an encoding gives back.
func normalizedOutsideAdded(tok *Tokenizer, text string) string {
	var sb strings.Builder
	tok.rawAdded.split(text, func(piece string, addedID int) {
		if addedID >= 0 {
			sb.WriteString(piece)
		} else {
			sb.WriteString(tok.normalize(piece))
		}
	})
	return sb.String()
}

func idsDigest(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(sum[:])[:16]
}

// sharedExamples reads the intent and the output (its JSON text as written in the file, which is what
// Python's json.dumps gives) of every example of a shared split.
func sharedExamples(tb testing.TB, split string) (intents, outputs []string) {
	tb.Helper()
	path := filepath.Join(sharedDataDir, split)
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("%v (the shared material must be checked out beside the repository)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var ex struct {
			Intent string          `json:"intent"`
			Output json.RawMessage `json:"output"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
			tb.Fatalf("%s:%d: %v", path, line, err)
		}
		intents = append(intents, ex.Intent)
		outputs = append(outputs, string(ex.Output))
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return intents, outputs
}

// TestHFIntentDigests checks the ids of every intent of the shared data set against HF's, by digest.
func TestHFIntentDigests(t *testing.T) {
	tok, fx := qwen(t), loadFixture(t)
	total := 0
	for _, split := range sharedSplits {
		intents, _ := sharedExamples(t, split)
		want := fx.Intents[split]
		if len(intents) != len(want) {
			t.Fatalf("%s: %d intents, fixture has %d digests", split, len(intents), len(want))
		}
		for i, intent := range intents {
			ids := tok.Encode(intent)
			if len(ids) != want[i].N || idsDigest(ids) != want[i].SHA {
				t.Errorf("%s:%d: intent %q: %d ids (%s), HF has %d ids with another digest",
					split, i+1, intent, len(ids), tokens(tok, ids), want[i].N)
			}
		}
		total += len(intents)
	}
	if total != 2138 {
		t.Errorf("checked %d intents, the shared data set has 2138", total)
	}
}

func TestVocabSizeAndTokenID(t *testing.T) {
	tok, fx := qwen(t), loadFixture(t)
	if got := tok.VocabSize(); got != fx.VocabSize {
		t.Errorf("VocabSize = %d, HF says %d", got, fx.VocabSize)
	}
	for token, want := range map[string]int{"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645} {
		if id, ok := tok.TokenID(token); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", token, id, ok, want)
		}
	}
	// A vocabulary token in its byte-level spelling ("Ġ" is the space byte) encodes to itself.
	id, ok := tok.TokenID("Ġthe")
	if !ok {
		t.Fatalf("TokenID(%q) not found", "Ġthe")
	}
	if got := tok.Encode(" the"); !equalIDs(got, []int{id}) {
		t.Errorf("Encode(%q) = %v, want [%d]", " the", got, id)
	}
	if _, ok := tok.TokenID("<|no_such_token|>"); ok {
		t.Errorf("TokenID of an unknown token reports ok")
	}
}

func TestDecodeSkipsUnknownIDs(t *testing.T) {
	tok := qwen(t)
	ids := tok.Encode("ok")
	withBad := append([]int{-1, tok.VocabSize(), 1 << 40}, ids...)
	if got := tok.Decode(withBad); got != "ok" {
		t.Errorf("Decode(%v) = %q, want %q", withBad, got, "ok")
	}
}

func TestConcurrentEncode(t *testing.T) {
	fx := loadFixture(t)
	tok, err := Load(qwenTokenizerPath) // a fresh tokenizer: an empty cache that the goroutines fill
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4*len(fx.Cases))
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range fx.Cases {
				c := fx.Cases[(i+g*37)%len(fx.Cases)]
				if got := tok.Encode(c.Text); !equalIDs(got, c.IDs) {
					errs <- c.Name
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("%s: concurrent Encode differs from HF", name)
	}
}
