package tokenizer

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/data"
)

// renderChatML is what training tokenizes for an example: data's ChatML prompt then its completion.
// The fixture's text digests (from scripts/fixtures/make_tokenizer_fixture.py) check data's renderer too.
func renderChatML(tb testing.TB, line []byte) string {
	tb.Helper()
	ex, err := data.ParseExample(line)
	if err != nil {
		tb.Fatal(err)
	}
	completion, err := data.Completion(ex)
	if err != nil {
		tb.Fatal(err)
	}
	return data.Prompt(ex) + completion
}

// TestHFPromptDigests encodes the full ChatML prompt and completion of every shared example and checks
// the ids against HF's, by digest.
func TestHFPromptDigests(t *testing.T) {
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Prompts map[string][]struct {
			TextSHA string `json:"text_sha"`
			N       int    `json:"n"`
			SHA     string `json:"sha"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	tok := qwen(t)
	total := 0
	for _, split := range sharedSplits {
		path := filepath.Join(sharedDataDir, split)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		want := fx.Prompts[split]
		i := 0
		for ; sc.Scan(); i++ {
			if i >= len(want) {
				t.Fatalf("%s has more examples than the fixture's %d", split, len(want))
			}
			text := renderChatML(t, sc.Bytes())
			sum := sha256.Sum256([]byte(text))
			if hex.EncodeToString(sum[:])[:16] != want[i].TextSHA {
				t.Fatalf("%s:%d: rendered prompt differs from the fixture script's:\n%s", split, i+1, text)
			}
			if ids := tok.Encode(text); len(ids) != want[i].N || idsDigest(ids) != want[i].SHA {
				t.Errorf("%s:%d: %d ids, HF has %d ids with another digest", split, i+1, len(ids), want[i].N)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if i != len(want) {
			t.Errorf("%s: %d examples, fixture has %d", split, i, len(want))
		}
		total += i
	}
	if total != 2138 {
		t.Errorf("checked %d prompts, the shared data set has 2138", total)
	}
}
