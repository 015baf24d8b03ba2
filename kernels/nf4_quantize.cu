// nf4_quantize.cu: NF4 quantization with double-quantized absmax (bitsandbytes layout, block sizes 64 and
// 256) of a weight already on the device, byte for byte what quant.Quantize / quant.QuantizeRaw produce on the
// CPU. Three kernels, launched in order on one stream (gpu/ops/nf4_quantize.go):
//
//   1. nf4_quantize_blocks_{bf16,f16,f32}: per 64-block absmax (float32) and the packed 4-bit codes
//      (CPU twin: quant's quantizeBlocks);
//   2. nf4_quantize_offset: the mean of the absmax, summed sequentially in float64 in index order as quant's
//      doubleQuantize does (the order decides the last bits, so one thread adds while the others stage);
//   3. nf4_quantize_nested: per 256 absmax values the absmax of (absmax − offset) and the 8-bit dynamic-map
//      code of each (CPU twin: the loop of quant's doubleQuantize, dynCode).
//
// Every rounding step is spelled with an _rn intrinsic so that nvcc cannot contract a multiply and an add
// into an FMA (the CPU code has none on these paths), and the file is compiled without fast-math, so
// subnormals are kept (no flush to zero) as in Go.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <float.h>
#include <stdint.h>

// kNF4Mid are the 15 decision thresholds of bitsandbytes' NF4 quantizer: quant's nf4Mid (quant/tables.go),
// the same decimal literals rounded once to float32. The code of x is the number of thresholds strictly
// below x, so an exact tie goes to the lower code and NaN (0 · 1/0 in an all-zero block) to code 0.
__device__ __constant__ float kNF4Mid[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

// nf4_code is quant's nf4Code: the count of thresholds strictly below x (its binary search computes the same
// count, the thresholds being sorted).
__device__ __forceinline__ unsigned nf4_code(float x) {
  unsigned c = 0;
#pragma unroll
  for (int i = 0; i < 15; i++) c += (x > kNF4Mid[i]) ? 1u : 0u;
  return c;
}

__device__ __forceinline__ float to_f32(const __nv_bfloat16* x, long long i) { return __bfloat162float(x[i]); }
__device__ __forceinline__ float to_f32(const __half* x, long long i) { return __half2float(x[i]); }
__device__ __forceinline__ float to_f32(const float* x, long long i) { return x[i]; }

// One warp per 64-element block; lane l holds elements 2l and 2l+1 of it (one code byte). blockDim.x 256
// (8 blocks per CTA), grid ceil(ceil(n/64) / 8).
template <typename T>
__device__ __forceinline__ void quantize_blocks(const T* __restrict__ x, uint8_t* __restrict__ codes,
                                                float* __restrict__ absmax, unsigned long long* __restrict__ bad,
                                                long long n) {
  const long long nblocks = (n + 63) / 64;
  const long long blk = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (blk >= nblocks) return;  // the whole warp leaves together
  const unsigned lane = threadIdx.x % 32u;
  const long long e = blk * 64 + 2 * (long long)lane;  // first of the lane's two elements
  const bool has0 = e < n, has1 = e + 1 < n;
  const float v0 = has0 ? to_f32(x, e) : 0.0f;
  const float v1 = has1 ? to_f32(x, e + 1) : 0.0f;
  const float a0 = fabsf(v0), a1 = fabsf(v1);
  // quantizeBlocks refuses NaN and ±Inf, naming the first such element: report the smallest index.
  if (!(a0 <= FLT_MAX)) atomicMin(bad, (unsigned long long)e);
  if (!(a1 <= FLT_MAX)) atomicMin(bad, (unsigned long long)(e + 1));
  // The block's absmax: a maximum is exact in any order (missing elements count as 0, as |v| ≥ 0 and the
  // CPU's running max starts at 0).
  float m = fmaxf(a0, a1);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (lane == 0) absmax[blk] = m;
  const float inv = __fdiv_rn(1.0f, m);  // CPU: inv := 1 / m (float32); +Inf when m = 0
  if (has0) {
    const unsigned hi = nf4_code(__fmul_rn(v0, inv));
    const unsigned lo = has1 ? nf4_code(__fmul_rn(v1, inv)) : 0u;  // odd n: the last low nibble stays 0
    codes[e / 2] = (uint8_t)(hi << 4 | lo);
  }
}

// nf4_quantize_blocks_<dtype> quantizes x block by block: absmax[b] = max |x| over elements [64b, 64b+64) ∩
// [0, n), and codes[i/2] holds element i's NF4 code (of x[i] · (1/absmax), rounded as float32) in its high
// nibble for even i, its low nibble for odd i. The smallest index of a NaN or ±Inf element is atomicMin'ed
// into *bad (which the launcher sets to all ones first). blockDim.x 256, grid ceil(ceil(n/64)/8).
// CPU twin: quant's quantizeBlocks (through QuantizeRaw for bf16/f16, Quantize for f32).
extern "C" __global__ void nf4_quantize_blocks_bf16(const __nv_bfloat16* __restrict__ x,  // [n]
                                                    uint8_t* __restrict__ codes,           // [ceil(n/2)]
                                                    float* __restrict__ absmax,            // [ceil(n/64)]
                                                    unsigned long long* __restrict__ bad,  // [1]
                                                    long long n) {
  quantize_blocks(x, codes, absmax, bad, n);
}

extern "C" __global__ void nf4_quantize_blocks_f16(const __half* __restrict__ x,         // [n]
                                                   uint8_t* __restrict__ codes,           // [ceil(n/2)]
                                                   float* __restrict__ absmax,            // [ceil(n/64)]
                                                   unsigned long long* __restrict__ bad,  // [1]
                                                   long long n) {
  quantize_blocks(x, codes, absmax, bad, n);
}

extern "C" __global__ void nf4_quantize_blocks_f32(const float* __restrict__ x,           // [n]
                                                   uint8_t* __restrict__ codes,           // [ceil(n/2)]
                                                   float* __restrict__ absmax,            // [ceil(n/64)]
                                                   unsigned long long* __restrict__ bad,  // [1]
                                                   long long n) {
  quantize_blocks(x, codes, absmax, bad, n);
}

// kOffsetTile values per staging buffer of nf4_quantize_offset (two buffers: 16 KB of shared memory).
#define kOffsetTile 2048

// nf4_quantize_offset writes *offset = float32(Σ absmax[i] / nb), the sum taken in float64 from i = 0 up,
// one rounded addition after another, then divided in float64 and rounded once to float32: exactly quant's
// doubleQuantize (`sum += float64(a)`, `float32(sum / float64(len(absmax)))`). Floating-point addition is
// not associative, so a tree reduction could differ in the last bits; thread 0 adds sequentially from shared
// memory while warps 1.. stage the next tile (double-buffered). One CTA: grid 1, blockDim.x 256.
extern "C" __global__ void nf4_quantize_offset(const float* __restrict__ absmax,  // [nb]
                                               float* __restrict__ offset,        // [1]
                                               long long nb) {
  __shared__ float tile[2][kOffsetTile];
  const long long ntiles = (nb + kOffsetTile - 1) / kOffsetTile;
  for (long long i = threadIdx.x; i < kOffsetTile && i < nb; i += blockDim.x) tile[0][i] = absmax[i];
  double sum = 0.0;
  for (long long t = 0; t < ntiles; t++) {
    __syncthreads();  // tile t is staged in tile[t%2]; tile[(t+1)%2] is no longer being read
    const long long base = t * kOffsetTile;
    if (threadIdx.x == 0) {
      const float* cur = tile[t % 2];
      const int cnt = (int)min((long long)kOffsetTile, nb - base);
#pragma unroll 8
      for (int i = 0; i < cnt; i++) sum = __dadd_rn(sum, (double)cur[i]);
    } else if (threadIdx.x >= 32 && t + 1 < ntiles) {
      float* next = tile[(t + 1) % 2];
      const long long nbase = base + kOffsetTile;
      for (long long i = threadIdx.x - 32; i < kOffsetTile && nbase + i < nb; i += blockDim.x - 32)
        next[i] = absmax[nbase + i];
    }
  }
  if (threadIdx.x == 0) *offset = __double2float_rn(__ddiv_rn(sum, (double)nb));
}

// dyn_code is quant's dynCode: a 7-step binary search from pivot 127 brackets x, then x goes to the bracket
// end on its side of the pivot if it lies strictly beyond the float32 midpoint ((code[end] + v) · 0.5, both
// steps rounded), else to the pivot. NaN gives 0.
__device__ __forceinline__ unsigned dyn_code(const float* code, float x) {
  int p = 127, lower = 0, upper = 255;
#pragma unroll
  for (int step = 64; step > 0; step >>= 1) {
    if (x > code[p]) {
      lower = p;
      p += step;
    } else {
      upper = p;
      p -= step;
    }
  }
  const float v = code[p];
  if (x > v) return (x > __fmul_rn(__fadd_rn(code[upper], v), 0.5f)) ? (unsigned)upper : (unsigned)p;
  return (x < __fmul_rn(__fadd_rn(code[lower], v), 0.5f)) ? (unsigned)lower : (unsigned)p;
}

// nf4_quantize_nested double-quantizes the absmax: for nested block b (values [256b, 256b+256) ∩ [0, nb)),
// c_i = absmax[i] − *offset (float32), absmax2[b] = max |c_i|, absmax_q[i] = dynCode(code2, c_i · (1/absmax2[b]))
// with every step rounded to float32 (an all-equal block has absmax2 0, 1/0 = +Inf, 0·Inf = NaN → code 0, as
// on the CPU). code2 is the dynamic map (the launcher uploads quant.DynamicMap). blockDim.x 256 (one thread
// per value), grid ceil(nb/256). CPU twin: the nested loop of quant's doubleQuantize.
extern "C" __global__ void nf4_quantize_nested(const float* __restrict__ absmax,  // [nb]
                                               const float* __restrict__ offset,  // [1] from nf4_quantize_offset
                                               const float* __restrict__ code2,   // [256] dynamic map
                                               uint8_t* __restrict__ absmax_q,    // [nb]
                                               float* __restrict__ absmax2,       // [ceil(nb/256)]
                                               long long nb) {
  __shared__ float map[256];
  __shared__ float warp_max[8];
  map[threadIdx.x] = code2[threadIdx.x];
  const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
  const bool has = i < nb;
  const float c = has ? __fsub_rn(absmax[i], *offset) : 0.0f;
  float m = fabsf(c);  // exact in any order, padding counts as 0 (the CPU's running max starts at 0)
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  m = warp_max[0];
#pragma unroll
  for (int w = 1; w < 8; w++) m = fmaxf(m, warp_max[w]);
  if (threadIdx.x == 0) absmax2[blockIdx.x] = m;
  const float inv = __fdiv_rn(1.0f, m);
  if (has) absmax_q[i] = (uint8_t)dyn_code(map, __fmul_rn(c, inv));
}
