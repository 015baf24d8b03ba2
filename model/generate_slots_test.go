package model

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// recordingSteps is DecodeSteps over the CPU generator that records the rows of every step and checks
// that a step names each slot once and only slots that were prefilled. (A slot prefilled under a running
// sequence would make that sequence's next step fail the CPU's position check, or its tokens differ.)
type recordingSteps struct {
	cpu    *cpuSteps
	filled []bool
	steps  []int // rows per step
	slots  int
}

func (r *recordingSteps) Begin(seqs, capacity int) error {
	r.filled, r.slots = make([]bool, seqs), seqs
	return r.cpu.Begin(seqs, capacity)
}

func (r *recordingSteps) Prefill(slots []int32, prompts [][]int32) ([]int32, error) {
	for _, s := range slots {
		r.filled[s] = true
	}
	return r.cpu.Prefill(slots, prompts)
}

func (r *recordingSteps) Step(seqs, ids, pos []int32) ([]int32, error) {
	seen := map[int32]bool{}
	for _, s := range seqs {
		if !r.filled[s] || seen[s] {
			return nil, fmt.Errorf("step row on slot %d: never prefilled, or twice in one step", s)
		}
		seen[s] = true
	}
	r.steps = append(r.steps, len(seqs))
	return r.cpu.Step(seqs, ids, pos)
}

func (r *recordingSteps) End() { r.cpu.End() }

// Continuous batching: with 1, 2, 3 or 5 slots for 7 prompts of different lengths, where a stop id ends
// some sequences early, every prompt gets exactly the tokens of decoding it alone, slots are reused only
// once free, and the steps stay full (as many rows as slots) while prompts wait.
func TestGenerateSlotsMatchAlone(t *testing.T) {
	cfg := smallConfig()
	w, err := RandomWeights(cfg, 21, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(w, randomLoRA(w, 2, 5))
	if err != nil {
		t.Fatal(err)
	}
	var prompts [][]int32
	for i, n := range []int{9, 8, 8, 6, 5, 3, 2} {
		prompts = append(prompts, randomIDs(n, cfg.VocabSize, int64(40+i)))
	}
	const maxNew = 8
	alone := make([][]int32, len(prompts))
	for i, p := range prompts {
		out, err := g.Generate([][]int32{p}, GenerateOptions{MaxNewTokens: maxNew})
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = out[0]
	}
	// A stop id that some prompts emit early: the second token of prompt 0's output.
	stop := alone[0][1]
	for i, p := range prompts {
		out, err := g.Generate([][]int32{p}, GenerateOptions{MaxNewTokens: maxNew, StopIDs: []int32{stop}})
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = out[0]
	}
	lengths := map[int]bool{}
	for _, a := range alone {
		lengths[len(a)] = true
	}
	if len(lengths) < 2 {
		t.Fatalf("all outputs have the same length %v: the test would not see slots refilled mid-run", alone)
	}
	for _, slots := range []int{1, 2, 3, 5, 0} {
		rec := &recordingSteps{cpu: &cpuSteps{g: g}}
		lastDone, lastTokens := 0, 0
		got, err := GenerateGreedy(rec, prompts, GenerateOptions{MaxNewTokens: maxNew, StopIDs: []int32{stop}, Slots: slots,
			Progress: func(done, tokens int, _ time.Duration) { lastDone, lastTokens = done, tokens }})
		if err != nil {
			t.Fatalf("%d slots: %v", slots, err)
		}
		emitted := 0
		for _, o := range got {
			emitted += len(o)
		}
		if lastDone != len(prompts) || lastTokens != emitted {
			t.Errorf("%d slots: last progress %d prompts, %d new tokens; want %d and %d", slots, lastDone, lastTokens, len(prompts), emitted)
		}
		for i := range prompts {
			if !slices.Equal(got[i], alone[i]) {
				t.Errorf("%d slots, prompt %d: %v, alone %v", slots, i, got[i], alone[i])
			}
		}
		want := slots
		if slots == 0 {
			want = len(prompts)
		}
		if rec.slots != want {
			t.Errorf("%d slots: Begin took %d", slots, rec.slots)
		}
		// While prompts wait, every step runs as many rows as there are slots.
		total := 0
		for _, a := range alone {
			total += max(0, len(a)-1) // tokens fed back: all but the last of each output (or the stop)
		}
		full := 0
		for _, n := range rec.steps {
			if n == want {
				full++
			}
		}
		t.Logf("%d slots: %d steps %v", slots, len(rec.steps), rec.steps)
		if slots > 0 && slots < len(prompts) && full < len(rec.steps)/2 {
			t.Errorf("%d slots: only %d of %d steps were full (%v)", slots, full, len(rec.steps), rec.steps)
		}
		sum := 0
		for _, n := range rec.steps {
			sum += n
		}
		if sum > total+len(prompts) {
			t.Errorf("%d slots: %d step rows for %d generated tokens", slots, sum, total)
		}
	}
}
