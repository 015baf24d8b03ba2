// nf4.cu: NF4 double-quant dequantization to bf16 (bitsandbytes layout), and the random fills that the
// benchmark uses to make NF4 weights on the device without a checkpoint.
//
// Conventions of every kernel in this folder (see kernels/doc.go): extern "C", one op per file, every scalar
// parameter 64 bits wide (long long, unsigned long long, double) or a pointer, because gorgonia.org/cu copies
// 8 bytes per kernel argument. float parameters are also fine (the launcher passes their bits in the low word).
#include <cuda_bf16.h>
#include <stdint.h>

// The 16 NF4 levels (QLoRA, Dettmers et al. 2023, appendix E), as bitsandbytes stores them.
__device__ __constant__ float kNF4Levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// nf4_dequant_bf16 turns n NF4 codes into bf16 values:
//   out[i] = NF4[code(i)] * (code2[absmax_q[i/blocksize]] * absmax2[i/blocksize/blocksize2] + offset)
// where code(i) is the high nibble of codes[i/2] for even i and the low nibble for odd i.
// Warp w of a block owns elements [512w, 512w + 512) of the block's 4096; lane l writes elements 8l..8l+7 and
// 256 + 8l..256 + 8l+7 of them, each 8 from 4 code bytes under one absmax: every load instruction reads 128
// consecutive bytes and every store writes 512. (Lanes that each wrote 16 consecutive elements in two 16-byte
// stores filled half of 32 sectors per store instruction: 11.2 ms of a training micro-batch [4, 512] at the
// 7B shape against 10.3 ms now, H200.) The code loads are issued first, so that their latency overlaps the
// table fill. blocksize a multiple of 8 (bitsandbytes uses 64); n < 2^32 (index math in 32 bits: 64-bit division
// is slow); codes 4-byte and out 16-byte aligned. grid ceil(n / 4096), block 256.
// CPU twin: quant's (*Weight).Dequantize (Go package quant), then rounded to bf16.
extern "C" __global__ void nf4_dequant_bf16(__nv_bfloat16* __restrict__ out,  // [n]
                                            const uint8_t* __restrict__ codes,  // [n/2]
                                            const uint8_t* __restrict__ absmax_q,  // [ceil(n/blocksize)]
                                            const float* __restrict__ code2,  // [256] dynamic map
                                            const float* __restrict__ absmax2,  // [ceil(n/blocksize/blocksize2)]
                                            float offset, long long n64, long long blocksize64,
                                            long long blocksize2_64) {
  __shared__ float levels[16];
  __shared__ float map[256];
  const unsigned n = (unsigned)n64, bs = (unsigned)blocksize64, bs2 = (unsigned)blocksize2_64;
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const unsigned e0 = blockIdx.x * 4096u + warp * 512u + 8u * lane, e[2] = {e0, e0 + 256u};
  uint32_t packed[2] = {0u, 0u};
#pragma unroll
  for (int h = 0; h < 2; h++)
    if (e[h] + 8u <= n) packed[h] = __ldg(reinterpret_cast<const uint32_t*>(codes + e[h] / 2u));
  map[threadIdx.x] = code2[threadIdx.x];
  if (threadIdx.x < 16) levels[threadIdx.x] = kNF4Levels[threadIdx.x];
  __syncthreads();
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const unsigned base = e[h];
    if (base >= n) return;
    const unsigned blk = base / bs;
    // Rounded as bitsandbytes does it (absmax dequantized to fp32 first, then the offset added): no FMA.
    const float scale = __fadd_rn(__fmul_rn(map[absmax_q[blk]], absmax2[blk / bs2]), offset);
    if (base + 8u <= n) {
      __align__(16) __nv_bfloat162 vals[4];
#pragma unroll
      for (int b = 0; b < 4; b++) {
        const uint32_t byte = (packed[h] >> (8 * b)) & 0xff;
        vals[b] = __floats2bfloat162_rn(levels[byte >> 4] * scale, levels[byte & 0xf] * scale);
      }
      *reinterpret_cast<uint4*>(out + base) = *reinterpret_cast<uint4*>(vals);
    } else {
      for (unsigned i = base; i < n; i++) {
        const uint8_t byte = codes[i / 2u];
        const uint32_t c = (i % 2u == 0u) ? (byte >> 4) : (byte & 0xf);
        out[i] = __float2bfloat16_rn(levels[c] * scale);
      }
    }
  }
}

// splitmix64 is the hash behind every random fill; its CPU twin is rng.SplitMix64 (internal/rng).
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// fill_random_u8 sets out[i] = low byte of splitmix64(seed ^ i) — random NF4 codes and absmax indices.
extern "C" __global__ void fill_random_u8(uint8_t* __restrict__ out, long long n, unsigned long long seed) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    out[i] = (uint8_t)(splitmix64(seed ^ (unsigned long long)i) & 0xff);
  }
}

// fill_random_bf16 sets out[i] to a uniform value in [-scale, scale): 24 random bits of splitmix64(seed ^ i).
extern "C" __global__ void fill_random_bf16(__nv_bfloat16* __restrict__ out, long long n,
                                            unsigned long long seed, float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    unsigned long long h = splitmix64(seed ^ (unsigned long long)i);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    out[i] = __float2bfloat16_rn((2.0f * u - 1.0f) * scale);
  }
}
