package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
)

// TestQwen2PatternIsTheFilesPattern makes sure the fast scanner is the one Qwen2.5's tokenizer.json asks for.
func TestQwen2PatternIsTheFilesPattern(t *testing.T) {
	raw, err := os.ReadFile(qwenTokenizerPath)
	if err != nil {
		t.Fatal(err)
	}
	var f fileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	pre := f.PreTokenizer
	if pre == nil || pre.Type != "Sequence" || len(pre.Pretokenizers) == 0 || pre.Pretokenizers[0].Pattern == nil ||
		pre.Pretokenizers[0].Pattern.Regex == nil {
		t.Fatalf("unexpected pre_tokenizer in %s", qwenTokenizerPath)
	}
	if got := *pre.Pretokenizers[0].Pattern.Regex; got != qwen2Pattern {
		t.Errorf("Qwen2.5's split regex is %q, the scanner implements %q", got, qwen2Pattern)
	}
}

var qwen2Regexp = regexp2.MustCompile(qwen2Pattern, regexp2.None)

// checkQwen2Split compares the scanner with the regex on regexp2. The one known difference is on purpose:
// like Oniguruma (HF), the scanner folds "ſ" to "s" in the case-insensitive contractions; regexp2 does not.
func checkQwen2Split(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, "'\u017f") {
		return
	}
	got := splitQwen2(s, nil)
	want := splitIsolated(qwen2Regexp, s, nil)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("split %q:\n scanner %q\n regexp2 %q", s, got, want)
	}
}

func TestQwen2SplitMatchesRegexp2(t *testing.T) {
	tok, fx := qwen(t), loadFixture(t)
	for _, c := range fx.Cases {
		checkQwen2Split(t, c.Text)
		checkQwen2Split(t, tok.normalize(c.Text))
	}
	for _, s := range []string{
		"a   b", " 1", "  \n  x", "\n\n\t  ", "x  ", "'S'T'RE'VE'M'LL'D", "'sup", "'x", "' ", "'", " '",
		"\r\nhello", " !!\r\n\r\nx", "a\u00a0\u00a0b", "\xff\xfeabc", "1 2  3", "\u0301a", "ab\u0301c",
	} {
		checkQwen2Split(t, s)
	}
}

// TestQwen2SplitRandom compares scanner and regexp2 on random strings over an alphabet of the characters
// each alternative of the pattern cares about.
func TestQwen2SplitRandom(t *testing.T) {
	alphabet := []string{" ", " ", "  ", "\n", "\r", "\t", "\u00a0", "\u3000", "\u2028", "a", "Z", "\u00e9", "\u4e16",
		"\U0001d518", "1", "\u0663", "\u2460", "'", "s", "S", "t", "re", "VE", "m", "L", "d", ".", "{", "$", "\"", "\u0301",
		"\U0001f600", "\u200d", "\x00", "\xff"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var sb strings.Builder
		for range rng.IntN(16) + 1 {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		checkQwen2Split(t, sb.String())
	}
}

func TestQwen2SplitLongS(t *testing.T) {
	// Oniguruma's case folding maps U+017F to "s", so HF cuts "'ſ" off as a contraction.
	got := splitQwen2("'\u017ft", nil)
	if want := []string{"'\u017f", "t"}; !reflect.DeepEqual(got, want) {
		t.Errorf("split = %q, want %q", got, want)
	}
}

// FuzzQwen2Split checks the scanner against regexp2 on any input.
func FuzzQwen2Split(f *testing.F) {
	for _, c := range loadFixture(f).Cases {
		f.Add(c.Text)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkQwen2Split(t, s)
	})
}
