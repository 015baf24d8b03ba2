// Package rng holds the counter-based hash behind t2m's reproducible random draws: LoRA dropout masks
// (model.DropoutSeed, model.DropoutKeep) and the random weights and token ids of the GPU tests and
// benchmarks (cuda.RandomU8CPU, cuda.RandomBF16CPU of gpu/cuda).
//
// A draw is a pure function of (seed, index), so a GPU thread reproduces element i's value from those
// two numbers alone: kernels/dropout.cu and kernels/nf4.cu each hold a CUDA copy of SplitMix64, and
// tests compare the device's bits with the ones computed here. Changing SplitMix64 changes every dropout
// mask and every random test weight; the kernels would then have to change with it.
//
// It depends only on the standard library, so that every t2m package may use it.
package rng

// SplitMix64 is Steele, Lea and Flood's 64-bit mixer, the finalizer of Java's SplittableRandom
// ("Fast splittable pseudorandom number generators", OOPSLA 2014): x + the golden-ratio increment, then two
// xor-shift-multiply rounds and a final xor-shift. Consecutive inputs give independent-looking outputs,
// which is what a counter-based draw (SplitMix64(seed + i) or SplitMix64(seed ^ i)) needs.
func SplitMix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
