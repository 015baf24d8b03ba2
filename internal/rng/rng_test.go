package rng

import "testing"

// TestSplitMix64 pins the outputs: the CUDA copies in kernels/dropout.cu and kernels/nf4.cu, every dropout
// mask and every random test weight depend on these exact bits. The first values are those of the
// reference SplitMix64 generator seeded with 0 (its state advances by the golden-ratio increment, so its
// k-th output is SplitMix64(k·0x9E3779B97F4A7C15)).
func TestSplitMix64(t *testing.T) {
	const gamma = 0x9E3779B97F4A7C15
	for k, want := range []uint64{0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F} {
		if got := SplitMix64(uint64(k) * gamma); got != want {
			t.Errorf("SplitMix64(%d·γ) = %#016x, want %#016x", k, got, want)
		}
	}
	if got := SplitMix64(^uint64(0)); got != 0xE4D971771B652C20 {
		t.Errorf("SplitMix64(2⁶⁴−1) = %#016x", got)
	}
}
