//go:build t2mcuda

package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

// TestDropoutMatchesCPU checks that dropout_bf16 applies model.DropoutForward's exact mask: on random bf16
// inputs padded from a logical [B·Tl, C] to [B·Tp, C], every real element equals the CPU's x·keep/(1−p)
// rounded once to bf16, bit for bit (same fp32 product); padded rows are written (poisoned output); the
// dropped share is near p; p = 0 is an exact copy; and in place (y = x) gives the same result. Widths from
// 8 to 18944 columns cover one and several column blocks of the launch grid (128 vectors of 8 each).
func TestDropoutMatchesCPU(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 64<<20)
	rng := rand.New(rand.NewPCG(41, 42))
	for _, c := range []struct {
		dims DropoutDims
		p    float32
	}{
		{DropoutDims{B: 3, Tp: 40, Tl: 29, C: 64}, 0.05},
		{DropoutDims{B: 2, Tp: 64, Tl: 64, C: 136}, 0.3},
		{DropoutDims{B: 4, Tp: 128, Tl: 77, C: 896}, 0.05},
		{DropoutDims{B: 2, Tp: 16, Tl: 9, C: 8}, 0},
		{DropoutDims{B: 2, Tp: 24, Tl: 19, C: 3584}, 0.5}, // the 7B's width: 4 column blocks, the last half full
		{DropoutDims{B: 1, Tp: 8, Tl: 8, C: 18944}, 0.05}, // 19 column blocks
	} {
		dims, p := c.dims, c.p
		seed := model.DropoutSeed(rng.Uint64()%1000, "model.layers.0.self_attn.q_proj.lora_dropout")
		n := dims.B * dims.Tp * dims.C
		host := make([]uint16, n) // [B·Tp, C] bf16
		for i := range host {
			host[i] = cuda.BF16(float32(rng.NormFloat64()) + 0.01) // never exactly 0
		}
		x, _ := a.Alloc(int64(n)*2, "x")
		y, _ := a.Alloc(int64(n)*2, "y")
		if err := cuda.Upload(d, x, host); err != nil {
			t.Fatal(err)
		}
		poison := make([]uint16, n)
		for i := range poison {
			poison[i] = 0x7fc1 // NaN
		}
		if err := cuda.Upload(d, y, poison); err != nil {
			t.Fatal(err)
		}
		if err := Dropout(d, y, x, dims, p, seed); err != nil {
			t.Fatal(err)
		}
		got := make([]uint16, n)
		if err := cuda.Download(d, got, y); err != nil {
			t.Fatal(err)
		}
		// The CPU on the logical tensor: the real rows of each sequence, contiguous.
		nl := dims.B * dims.Tl * dims.C
		xl, want := make([]float32, nl), make([]float32, nl)
		for b := range dims.B {
			for pos := range dims.Tl {
				for col := range dims.C {
					xl[(b*dims.Tl+pos)*dims.C+col] = cuda.F32(host[(b*dims.Tp+pos)*dims.C+col])
				}
			}
		}
		if p > 0 {
			model.DropoutForward(want, xl, p, seed)
		} else {
			copy(want, xl)
		}
		mismatch, dropped := 0, 0
		for b := range dims.B {
			for pos := range dims.Tp {
				for col := range dims.C {
					g := got[(b*dims.Tp+pos)*dims.C+col]
					if math.IsNaN(float64(cuda.F32(g))) {
						t.Fatalf("dims %+v: element (%d, %d, %d) not written", dims, b, pos, col)
					}
					if pos >= dims.Tl {
						continue
					}
					w := want[(b*dims.Tl+pos)*dims.C+col]
					if g != cuda.BF16(w) {
						mismatch++
					}
					if w == 0 {
						dropped++
					}
				}
			}
		}
		share := float64(dropped) / float64(nl)
		t.Logf("dims %+v p %g: %d mismatches of %d, dropped %.4f", dims, p, mismatch, nl, share)
		if mismatch != 0 {
			t.Errorf("dims %+v p %g: %d of %d elements differ from model.DropoutForward", dims, p, mismatch, nl)
		}
		if math.Abs(share-float64(p)) > 4*math.Sqrt(float64(p)*(1-float64(p))/float64(nl))+1e-9 {
			t.Errorf("dims %+v: dropped share %.4f, want p = %g", dims, share, p)
		}
		// In place: y = x.
		if err := Dropout(d, x, x, dims, p, seed); err != nil {
			t.Fatal(err)
		}
		inPlace := make([]uint16, n)
		if err := cuda.Download(d, inPlace, x); err != nil {
			t.Fatal(err)
		}
		for i := range inPlace {
			if inPlace[i] != got[i] {
				t.Fatalf("dims %+v: in place differs at %d", dims, i)
			}
		}
	}
}

// TestDropoutAddMatchesSeparate checks dropout_add_bf16 against the two kernels it fuses: a + Dropout(x) by
// DropoutAdd equals AddBF16(a, Dropout(x)) bit for bit, on padded shapes and widths of one and several
// column blocks, with p > 0 and p = 0, and in place (y = a).
func TestDropoutAddMatchesSeparate(t *testing.T) {
	d := cudatest.Device(t)
	ar := cudatest.Arena(t, d, 64<<20)
	rng := rand.New(rand.NewPCG(43, 44))
	for _, c := range []struct {
		dims DropoutDims
		p    float32
	}{
		{DropoutDims{B: 3, Tp: 40, Tl: 29, C: 64}, 0.05},
		{DropoutDims{B: 2, Tp: 24, Tl: 19, C: 3584}, 0.5},
		{DropoutDims{B: 1, Tp: 8, Tl: 8, C: 18944}, 0.05},
		{DropoutDims{B: 2, Tp: 16, Tl: 9, C: 8}, 0},
	} {
		dims, p := c.dims, c.p
		seed := model.DropoutSeed(rng.Uint64()%1000, "model.layers.1.mlp.up_proj.lora_dropout")
		n := dims.B * dims.Tp * dims.C
		ha, hx := make([]uint16, n), make([]uint16, n)
		for i := range ha {
			ha[i] = cuda.BF16(float32(rng.NormFloat64()))
			hx[i] = cuda.BF16(float32(rng.NormFloat64()) * 0.37)
		}
		buf := func(what string, v []uint16) cuda.Buffer {
			b, err := ar.Alloc(int64(n)*2, what)
			if err != nil {
				t.Fatal(err)
			}
			if v != nil {
				if err := cuda.Upload(d, b, v); err != nil {
					t.Fatal(err)
				}
			}
			return b
		}
		a, x, dx, want, got := buf("a", ha), buf("x", hx), buf("dropout(x)", nil), buf("want", nil), buf("got", nil)
		if err := Dropout(d, dx, x, dims, p, seed); err != nil {
			t.Fatal(err)
		}
		if err := AddBF16(d, want, a, dx, n); err != nil {
			t.Fatal(err)
		}
		if err := DropoutAdd(d, got, a, x, dims, p, seed); err != nil {
			t.Fatal(err)
		}
		inPlace := buf("a, in place", ha)
		if err := DropoutAdd(d, inPlace, inPlace, x, dims, p, seed); err != nil {
			t.Fatal(err)
		}
		diff, diffIn, changed := compareSums(t, d, n, want, got, inPlace, ha, nil)
		if diff != 0 || diffIn != 0 {
			t.Errorf("%+v p %g: %d of %d values differ from AddBF16(a, Dropout(x)), %d in place", dims, p, diff, n, diffIn)
		}
		if changed < n/4 {
			t.Errorf("%+v p %g: only %d of %d values differ from a: the test does not exercise the add", dims, p, changed, n)
		}
	}
}

// TestLoRADropoutAddMatchesReference checks lora_dropout_add_bf16 bit for bit against DropoutAdd of the LoRA
// input gradient computed on the host: dxl = bf16(s · Σ_r g[n,r]·A[r,c]) summed over r in order in fp32 (each
// product of bf16 values is exact, so the sum is the kernel's), then uploaded as DropoutAdd's x. Ranks 1 to 16,
// padded and unpadded rows (the kernel walks 8 rows per thread, so a Tp that is not a multiple of 8 covers its
// last partial tile), widths of one and several column blocks, and y = a in place.
func TestLoRADropoutAddMatchesReference(t *testing.T) {
	d := cudatest.Device(t)
	ar := cudatest.Arena(t, d, 64<<20)
	rng := rand.New(rand.NewPCG(45, 46))
	for _, c := range []struct {
		dims DropoutDims
		r    int
		p, s float32
	}{
		{DropoutDims{B: 3, Tp: 29, Tl: 23, C: 64}, 8, 0.05, 2},
		{DropoutDims{B: 2, Tp: 24, Tl: 19, C: 3584}, 16, 0.5, 0.5},
		{DropoutDims{B: 1, Tp: 8, Tl: 8, C: 1040}, 1, 0.05, 2},
		{DropoutDims{B: 2, Tp: 13, Tl: 13, C: 8}, 4, 0, 1},
		{DropoutDims{B: 2, Tp: 16, Tl: 11, C: 3584}, 8, 0.05, 2},
	} {
		dims, R := c.dims, c.r
		seed := model.DropoutSeed(rng.Uint64()%1000, "model.layers.0.self_attn.q_proj.lora_dropout")
		rows := dims.B * dims.Tp
		n := rows * dims.C
		ha, hg, hA := make([]uint16, n), make([]uint16, rows*R), make([]uint16, R*dims.C)
		for i := range ha {
			ha[i] = cuda.BF16(float32(rng.NormFloat64()))
		}
		for i := range hg {
			hg[i] = cuda.BF16(float32(rng.NormFloat64()) * 0.3)
		}
		for i := range hA {
			hA[i] = cuda.BF16(float32(rng.NormFloat64()) * 0.2)
		}
		hx := make([]uint16, n) // dxl [rows, C]
		for row := range rows {
			for col := range dims.C {
				var acc float32
				for r := range R {
					acc += cuda.F32(hg[row*R+r]) * cuda.F32(hA[r*dims.C+col])
				}
				hx[row*dims.C+col] = cuda.BF16(acc * c.s)
			}
		}
		buf := func(what string, v []uint16) cuda.Buffer {
			b, err := ar.Alloc(int64(max(len(v), n))*2, what)
			if err != nil {
				t.Fatal(err)
			}
			if err := cuda.Upload(d, b, v); err != nil {
				t.Fatal(err)
			}
			return b
		}
		a, x, g, A := buf("a", ha), buf("dxl", hx), buf("g", hg), buf("A", hA)
		want, got, inPlace := buf("want", make([]uint16, n)), buf("got", make([]uint16, n)), buf("a, in place", ha)
		if err := DropoutAdd(d, want, a, x, dims, c.p, seed); err != nil {
			t.Fatal(err)
		}
		if err := LoRADropoutAdd(d, got, a, g, A, R, dims, c.p, c.s, seed); err != nil {
			t.Fatal(err)
		}
		if err := LoRADropoutAdd(d, inPlace, inPlace, g, A, R, dims, c.p, c.s, seed); err != nil {
			t.Fatal(err)
		}
		diff, diffIn, changed := compareSums(t, d, n, want, got, inPlace, ha, func(i int, got, want uint16) {
			t.Logf("%+v r %d: element %d: got %g, want %g", dims, R, i, cuda.F32(got), cuda.F32(want))
		})
		if diff != 0 || diffIn != 0 {
			t.Errorf("%+v r %d p %g: %d of %d values differ from DropoutAdd(a, dxl), %d in place", dims, R, c.p, diff,
				n, diffIn)
		}
		if changed < n/4 {
			t.Errorf("%+v r %d: only %d of %d values differ from a: the test does not exercise the LoRA term", dims, R,
				changed, n)
		}
	}
}

// compareSums downloads the first n bf16 values of want, got and inPlace (a fused sum computed into its own
// buffer and into a), and counts the values of got and of inPlace that differ from want, and those of want
// that differ from a (how much the sum changed a). logDiff, when set, sees got's first three differences.
func compareSums(t *testing.T, d *cuda.Device, n int, want, got, inPlace cuda.Buffer, a []uint16,
	logDiff func(i int, got, want uint16)) (diff, diffIn, changed int) {
	t.Helper()
	w, g, gi := make([]uint16, n), make([]uint16, n), make([]uint16, n)
	for _, dl := range []struct {
		dst []uint16
		src cuda.Buffer
	}{{w, want}, {g, got}, {gi, inPlace}} {
		if err := cuda.Download(d, dl.dst, dl.src.Slice(0, int64(n)*2)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range w {
		if g[i] != w[i] {
			if logDiff != nil && diff < 3 {
				logDiff(i, g[i], w[i])
			}
			diff++
		}
		if gi[i] != w[i] {
			diffIn++
		}
		if w[i] != a[i] {
			changed++
		}
	}
	return diff, diffIn, changed
}
