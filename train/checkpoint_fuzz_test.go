package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// fuzzCheckpoint writes a valid checkpoint of a two-module run into a new folder and returns it with the
// run's parameters, optimizer and fingerprint (2 epochs of 3 updates).
func fuzzCheckpoint(tb testing.TB) (string, *Params, *AdamW, Fingerprint, int) {
	tb.Helper()
	p := &Params{Modules: []string{"m0", "m1"}, Values: [][]float32{{1, 2}, {3}, {4, 5, 6}, {7}}}
	opt := NewAdamW(p.Sizes(), 0)
	fp := Fingerprint{Model: "tiny", Rank: 1, Epochs: 2, BatchSize: 1, GradAccum: 1, LR: 1e-3, DataSHA256: "ab"}
	dir := filepath.Join(tb.TempDir(), "checkpoint")
	opt.Step = 4
	if err := SaveCheckpoint(dir, State{Step: 4, Epoch: 1, Window: 1, Fingerprint: fp}, p, opt); err != nil {
		tb.Fatal(err)
	}
	return dir, p, opt, fp, 3
}

// FuzzCheckpointState checks that any state.json, loaded beside valid tensors and checked with
// CheckResume, is refused with an error or gives a position inside the run's plan: never a panic, and
// never a step, epoch or window that the loop would index out of range or loop on forever.
func FuzzCheckpointState(f *testing.F) {
	dir, p, opt, fp, windows := fuzzCheckpoint(f)
	good, err := os.ReadFile(filepath.Join(dir, checkpointState))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, edit := range []map[string]any{{"window": -1}, {"window": 99}, {"step": 99}, {"epoch": -3},
		{"adam_step": 1 << 40}, {"best_eval_loss": "NaN"}, {"version": 2},
		{"early_stopping": map[string]any{"eval_every": 1, "patience": 2, "metric": "m", "best": 0.5, "best_step": 3, "evaluations_without_improvement": 1}},
		{"early_stopping": map[string]any{"patience": 2, "best_step": 9, "evaluations_without_improvement": 5, "stopped": true}}} {
		var st map[string]any
		_ = json.Unmarshal(good, &st)
		for k, v := range edit {
			st[k] = v
		}
		b, _ := json.Marshal(st)
		f.Add(b)
	}
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(filepath.Join(dir, checkpointState), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := LoadCheckpoint(dir, p, opt)
		if err != nil {
			return
		}
		if err := st.CheckResume(dir, fp, windows); err != nil {
			return
		}
		total := windows * fp.Epochs
		if st.Step < 0 || st.Step > total || st.Epoch < 0 || st.Epoch > fp.Epochs || st.Window < 0 || st.Window >= windows ||
			st.Step != st.Epoch*windows+st.Window || opt.Step != st.Step {
			t.Fatalf("accepted state %+v (adam step %d) is outside the plan of %d epochs × %d updates", st, opt.Step, fp.Epochs, windows)
		}
	})
}
