package eval

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"

	"github.com/t2m/t2m/data"
)

// TestReferenceVerdicts replays testdata/reference/verdicts.jsonl: mutated gold
// outputs of the shared data set with the extraction and the three per-example
// layer verdicts computed by a Python statement of the original's rules on
// Python's json.loads (make_verdicts.py writes it). Go must agree on every one.
func TestReferenceVerdicts(t *testing.T) {
	splits := map[string][]data.Example{}
	for _, s := range []string{"train", "eval", "held_out"} {
		splits[s] = readShared(t, s)
	}
	f, err := os.Open("testdata/reference/verdicts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n, pass := 0, 0
	for line := 1; sc.Scan(); line++ {
		var want struct {
			Split, Raw, Prediction    string
			Index                     int
			Syntax, Operators, Fields bool
		}
		if err := json.Unmarshal(sc.Bytes(), &want); err != nil {
			t.Fatalf("verdicts.jsonl:%d: %v", line, err)
		}
		exs := splits[want.Split]
		if want.Index >= len(exs) {
			t.Fatalf("verdicts.jsonl:%d: %s has no example %d", line, want.Split, want.Index)
		}
		r := ScoreExample(exs[want.Index], want.Raw, nil)
		got := [3]bool{r.Syntax.Passed, r.Operators.Passed, r.Fields.Passed}
		exp := [3]bool{want.Syntax, want.Operators, want.Fields}
		if r.Prediction != want.Prediction || got != exp {
			t.Errorf("verdicts.jsonl:%d (%s #%d): got extraction %q verdicts %v, Python says %q %v (%+v)",
				line, want.Split, want.Index, r.Prediction, got, want.Prediction, exp, r.Syntax.Errors)
		}
		n++
		if r.PassedAll {
			pass++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 400 || pass == 0 || pass == n {
		t.Fatalf("%d cases, %d passing all layers: the fixture should mix verdicts", n, pass)
	}
}
