//go:build t2mcuda

package gpu

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/t2m/t2m/model"
)

// TestDecodeBench7B times greedy generation at Qwen2.5-Coder-7B's shape as .bench/hf_generate_anchor.py does:
// random weights (NF4 made on the GPU, dequantized to bf16 once), prompts of 400 random tokens, 64 new
// tokens forced (no stop ids), batch 1, 8 and 32, then the same with the projections kept NF4 and
// dequantized per use; one warm-up generation each, then the median of 3. It also
// times a 1-token generation (prefill alone) to split prefill from decoding. A measurement, not a check:
// it runs only with T2M_DECODE_BENCH=1 and prints one line per batch size.
func TestDecodeBench7B(t *testing.T) {
	if os.Getenv("T2M_DECODE_BENCH") != "1" {
		t.Skip("set T2M_DECODE_BENCH=1 to time generation at the 7B shape")
	}
	d := device(t)
	reg, err := model.Lookup("qwen2.5-coder-7b")
	if err != nil {
		t.Fatal(err)
	}
	cfg := reg.Config
	for _, perUse := range []bool{false, true} {
		mode := map[bool]string{false: "bf16 at load", true: "NF4 per use"}[perUse]
		t.Run(mode, func(t *testing.T) {
			d.Bind()
			free, _, err := d.MemInfo()
			if err != nil {
				t.Fatal(err)
			}
			a := arena(t, d, free-2<<30)
			blas, err := d.BLAS()
			if err != nil {
				t.Fatal(err)
			}
			dw, err := randomDecodeWeights(d, a, cfg, perUse)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("weights (%s): %.2f GiB on %s", mode, gib(a.Peak()), d.Name)
			dec := newDecoder(d, blas, a, dw, 0)
			benchDecode(t, d, dec, mode)
			if !perUse {
				for _, b := range []int{1, 32} {
					stepBreakdown(t, d, dec, b)
				}
			}
		})
	}
}

// benchDecode prints TestDecodeBench7B's lines for one decoder.
func benchDecode(t *testing.T, d *Device, dec *decoder, mode string) {
	const prompt, newTokens = 400, 64
	rng := rand.New(rand.NewPCG(5, 6))
	run := func(b, maxNew int) (time.Duration, error) {
		prompts := make([][]int32, b)
		for i := range prompts {
			prompts[i] = make([]int32, prompt)
			for j := range prompts[i] {
				prompts[i][j] = int32(rng.IntN(151643))
			}
		}
		t0 := time.Now()
		out, err := model.GenerateGreedy(dec, prompts, model.GenerateOptions{MaxNewTokens: maxNew})
		dt := time.Since(t0)
		if err == nil && len(out[b-1]) != maxNew {
			err = fmt.Errorf("%d tokens generated, want %d", len(out[b-1]), maxNew)
		}
		return dt, err
	}
	med := func(b, maxNew int) float64 {
		if _, err := run(b, maxNew); err != nil { // warm-up
			t.Fatal(err)
		}
		var xs []float64
		for range 3 {
			dt, err := run(b, maxNew)
			if err != nil {
				t.Fatal(err)
			}
			xs = append(xs, dt.Seconds())
		}
		return median(xs)
	}
	for _, b := range []int{1, 8, 32} {
		full, pre := med(b, newTokens), med(b, 1)
		fmt.Printf("{\"system\": \"t2m-gpu-generate\", \"weights\": %q, \"gpu\": %q, \"batch\": %d, \"prompt\": %d, "+
			"\"new\": %d, \"s\": %.3f, \"new_tok_per_s\": %.1f, \"prefill_s\": %.3f, \"decode_tok_per_s\": %.1f}\n", mode, d.Name,
			b, prompt, newTokens, full, float64(b*newTokens)/full, pre, float64(b*(newTokens-1))/(full-pre))
	}
}

// stepBreakdown prints where one decode step's time goes (device events after each op, summed by name over
// the layers), at batch b with 400 cached tokens, for each decode attention kernel.
func stepBreakdown(t *testing.T, d *Device, dec *decoder, b int) {
	const prompt = 400
	rng := rand.New(rand.NewPCG(8, 9))
	prompts := make([][]int32, b)
	for i := range prompts {
		prompts[i] = make([]int32, prompt)
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(151643))
		}
	}
	if err := dec.Begin(b, prompt+16); err != nil {
		t.Fatal(err)
	}
	defer dec.End()
	ids, err := dec.Prefill(prompts)
	if err != nil {
		t.Fatal(err)
	}
	seqs, pos := make([]int32, b), make([]int32, b)
	for i := range seqs {
		seqs[i], pos[i] = int32(i), prompt
	}
	defer func(v bool) { decodeAttnD128 = v }(decodeAttnD128)
	for _, fast := range []bool{false, true} {
		decodeAttnD128 = fast
		var total float64
		var wall time.Duration
		for rep := 0; rep < 2; rep++ { // the first step warms up
			if rep == 1 {
				dec.tm = &timer{d: d}
				dec.tm.mark("start")
			}
			t0 := time.Now()
			if ids, err = dec.Step(seqs, ids, pos); err != nil {
				t.Fatal(err)
			}
			wall = time.Since(t0)
			for i := range pos {
				pos[i]++
			}
		}
		if total, err = dec.tm.finish(); err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(dec.tm.ops))
		for n := range dec.tm.ops {
			names = append(names, n)
		}
		slices.SortFunc(names, func(x, y string) int { return cmp.Compare(dec.tm.ops[y], dec.tm.ops[x]) })
		line := fmt.Sprintf("step breakdown b=%d d128-attention=%v: wall %.2f ms, events %.2f ms:", b, fast,
			float64(wall.Microseconds())/1000, total)
		for _, n := range names {
			line += fmt.Sprintf(" %s %.2f;", n, dec.tm.ops[n])
		}
		fmt.Println(line)
		dec.tm = nil
	}
}
