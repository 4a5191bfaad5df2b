// Micro-kernels for the roofline: the peak rate of the two instruction
// streams the network runs on, measured, not taken from a data sheet.
//   binary MACs: acc += popcount(x XOR w) on 64-bit words (one MAC per
//                bit), as the conv kernels do, minus their loads;
//   fp32 MACs:   acc = acc * a + b as fused multiply-adds (the float
//                stem's work).
// Twelve independent accumulators hide the latencies; each depends on the
// last iteration so that nothing can be hoisted out of the loop.
#pragma once
#include <omp.h>

#include "common.h"
#include "kernel_avx2.h"

namespace mmb {

constexpr int kPeakAcc = 12;
inline volatile uint64_t peak_sink;

// Returns the binary MACs done (iters * kPeakAcc * bits per register).
inline double peak_popcount_scalar(int64_t iters, uint64_t *sink) {
  uint64_t acc[kPeakAcc];
  for (int j = 0; j < kPeakAcc; ++j) acc[j] = j;
  const uint64_t w = 0x5555aaaa3333ccccULL;
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kPeakAcc; ++j)
      acc[j] += __builtin_popcountll(acc[j] ^ w);
  for (int j = 0; j < kPeakAcc; ++j) *sink += acc[j];
  return 64.0 * kPeakAcc * iters;
}

inline double peak_fma_scalar(int64_t iters, uint64_t *sink) {
  float acc[kPeakAcc];
  for (int j = 0; j < kPeakAcc; ++j) acc[j] = (float)j;
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kPeakAcc; ++j)
      acc[j] = __builtin_fmaf(acc[j], 0.999f, 1e-3f);
  for (int j = 0; j < kPeakAcc; ++j) *sink += (uint64_t)acc[j];
  return 1.0 * kPeakAcc * iters;
}

#ifdef MMB_X86
__attribute__((target("avx2"))) inline double peak_popcount_avx2(
    int64_t iters, uint64_t *sink) {
  __m256i acc[kPeakAcc];
  for (int j = 0; j < kPeakAcc; ++j) acc[j] = _mm256_set1_epi64x(j);
  const __m256i w = _mm256_set1_epi64x(0x5555aaaa3333ccccLL);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kPeakAcc; ++j)
      // the kernel's per-word stream: byte counts added as bytes (its
      // widening sum, once per 31 words, is left out like its loads)
      acc[j] = _mm256_add_epi8(
          acc[j], avx2::popcount_bytes(_mm256_xor_si256(acc[j], w)));
  for (int j = 0; j < kPeakAcc; ++j)
    *sink += (uint64_t)_mm256_extract_epi64(acc[j], 0);
  return 256.0 * kPeakAcc * iters;
}

__attribute__((target("avx2,fma"))) inline double peak_fma_avx2(
    int64_t iters, uint64_t *sink) {
  __m256 acc[kPeakAcc];
  for (int j = 0; j < kPeakAcc; ++j) acc[j] = _mm256_set1_ps((float)j);
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kPeakAcc; ++j)
      acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  for (int j = 0; j < kPeakAcc; ++j)
    *sink += (uint64_t)_mm256_cvtss_f32(acc[j]);
  return 8.0 * kPeakAcc * iters;
}

__attribute__((target("avx512f,avx512vpopcntdq"))) inline double
peak_popcount_avx512(int64_t iters, uint64_t *sink) {
  __m512i acc[kPeakAcc];
  for (int j = 0; j < kPeakAcc; ++j) acc[j] = _mm512_set1_epi64(j);
  const __m512i w = _mm512_set1_epi64(0x5555aaaa3333ccccLL);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kPeakAcc; ++j)
      acc[j] = _mm512_add_epi64(
          acc[j], _mm512_popcnt_epi64(_mm512_xor_si512(acc[j], w)));
  for (int j = 0; j < kPeakAcc; ++j)
    *sink += (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(acc[j]));
  return 512.0 * kPeakAcc * iters;
}

__attribute__((target("avx512f"))) inline double peak_fma_avx512(
    int64_t iters, uint64_t *sink) {
  __m512 acc[kPeakAcc];
  for (int j = 0; j < kPeakAcc; ++j) acc[j] = _mm512_set1_ps((float)j);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kPeakAcc; ++j)
      acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  for (int j = 0; j < kPeakAcc; ++j)
    *sink += (uint64_t)_mm_cvtss_f32(_mm512_castps512_ps128(acc[j]));
  return 16.0 * kPeakAcc * iters;
}
#endif  // MMB_X86

// MACs per second of `kind` (0 binary, 1 fp32) on nthreads threads at
// instruction level simd, each thread running iters iterations.
inline double peak_rate(int kind, int simd, int64_t iters, int nthreads) {
  using PeakFn = double (*)(int64_t, uint64_t *);
  PeakFn fn = kind == 0 ? peak_popcount_scalar : peak_fma_scalar;
#ifdef MMB_X86
  if (simd == kAvx512)
    fn = kind == 0 ? peak_popcount_avx512 : peak_fma_avx512;
  else if (simd == kAvx2)
    fn = kind == 0 ? peak_popcount_avx2 : peak_fma_avx2;
#endif
  double macs = 0.0;
  uint64_t sink = 0;
  const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nthreads) reduction(+ : macs, sink)
  macs += fn(iters, &sink);
  const double dt = omp_get_wtime() - t0;
  peak_sink = sink;  // a volatile store: no loop is dead code
  return dt > 0 ? macs / dt : 0.0;
}

}  // namespace mmb
