// AVX-512 VPOPCNTDQ kernel: the row driver (row_items.h) with one
// popcount instruction per eight words, up to 24 accumulators in
// registers, and the epilogue eight or sixteen channels per instruction.
#pragma once
#ifdef MMB_X86
#include "common.h"

namespace mmb {
namespace avx512 {

#define MMB_ISA __attribute__((target("avx512f,avx512vl,avx512vpopcntdq")))

struct Lanes {
  using Counts = __m512i;  // eight int64 counts in one zmm

  MMB_ISA static inline uint32_t run(const ConvArgs &A, Counts acc,
                                     int64_t k_valid, int64_t pix,
                                     int64_t co, int n) {
    const __mmask8 m = (__mmask8)(n >= kLanes ? 0xff : (1u << n) - 1);
    const __m256i d = _mm512_cvtepi64_epi32(_mm512_sub_epi64(
        _mm512_set1_epi64(k_valid), _mm512_slli_epi64(acc, 1)));
    const int64_t i = pix * A.cout + co;
    // Unmasked stores for full groups (masked stores are slower on AMD).
    if (A.dot) {
      if (n == kLanes)
        _mm256_storeu_si256((__m256i *)(A.dot + i), d);
      else
        _mm256_mask_storeu_epi32(A.dot + i, m, d);
    }
    if (!A.out && !A.bits) return 0;
    __m256 v = _mm256_cvtepi32_ps(d);
    if (A.scale) v = _mm256_mul_ps(v, _mm256_maskz_loadu_ps(m, A.scale + co));
    if (A.shift) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, A.shift + co));
    if (A.res) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, A.res + i));
    if (A.act_b1) {  // RPReLU, as PyTorch's prelu: v > 0 ? v : a * v
      v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, A.act_b1 + co));
      const __m256 scaled =
          _mm256_mul_ps(v, _mm256_maskz_loadu_ps(m, A.act_slope + co));
      const __mmask8 pos =
          _mm256_cmp_ps_mask(v, _mm256_setzero_ps(), _CMP_GT_OQ);
      v = _mm256_mask_blend_ps(pos, scaled, v);
      v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, A.act_b2 + co));
    }
    if (A.out) {
      if (n == kLanes)
        _mm256_storeu_ps(A.out + i, v);
      else
        _mm256_mask_storeu_ps(A.out + i, m, v);
    }
    const __m256 thr =
        A.thr ? _mm256_maskz_loadu_ps(m, A.thr + co) : _mm256_setzero_ps();
    return _mm256_mask_cmp_ps_mask(m, v, thr, _CMP_NLT_UQ);  // NaN: 1
  }

  // run() for two full groups (16 channels from co) at once: the float
  // work on one zmm instead of two ymm (the epilogue is about a quarter
  // of a 64-channel conv's time; the same operations per channel).
  MMB_ISA static inline uint32_t run_pair(const ConvArgs &A, Counts acc0,
                                          Counts acc1, int64_t k_valid,
                                          int64_t pix, int64_t co) {
    const __m512i counts = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm512_cvtepi64_epi32(acc0)),
        _mm512_cvtepi64_epi32(acc1), 1);
    const __m512i d = _mm512_sub_epi32(_mm512_set1_epi32((int)k_valid),
                                       _mm512_slli_epi32(counts, 1));
    const int64_t i = pix * A.cout + co;
    if (A.dot) _mm512_storeu_si512(A.dot + i, d);
    if (!A.out && !A.bits) return 0;
    __m512 v = _mm512_cvtepi32_ps(d);
    if (A.scale) v = _mm512_mul_ps(v, _mm512_loadu_ps(A.scale + co));
    if (A.shift) v = _mm512_add_ps(v, _mm512_loadu_ps(A.shift + co));
    if (A.res) v = _mm512_add_ps(v, _mm512_loadu_ps(A.res + i));
    if (A.act_b1) {
      v = _mm512_add_ps(v, _mm512_loadu_ps(A.act_b1 + co));
      const __m512 scaled =
          _mm512_mul_ps(v, _mm512_loadu_ps(A.act_slope + co));
      const __mmask16 pos =
          _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
      v = _mm512_mask_blend_ps(pos, scaled, v);
      v = _mm512_add_ps(v, _mm512_loadu_ps(A.act_b2 + co));
    }
    if (A.out) _mm512_storeu_ps(A.out + i, v);
    const __m512 thr =
        A.thr ? _mm512_loadu_ps(A.thr + co) : _mm512_setzero_ps();
    return _mm512_cmp_ps_mask(v, thr, _CMP_NLT_UQ);  // NaN: 1
  }
};

#include "epilogue.h"

// row_items.h: acc[p][g] = sum over the taps of popcount(a XOR w).
template <int NG, int P, int CW>
MMB_ISA __attribute__((always_inline)) inline void accum(
    const uint64_t *act, int64_t base, int64_t pstep, const int64_t *aoff,
    const int64_t *woff, int nt, const uint64_t *w0, int64_t gstride,
    int64_t cw_rt, __m512i (&acc)[P][NG]) {
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int g = 0; g < NG; ++g) acc[p][g] = _mm512_setzero_si512();
  const int64_t cw = CW ? CW : cw_rt;
  for (int t = 0; t < nt; ++t) {
    const uint64_t *a = act + (base + aoff[t]);
    const uint64_t *wt = w0 + woff[t];
#pragma GCC unroll 1
    for (int64_t k = 0; k < cw; ++k) {
      __m512i av[P];
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p)
        av[p] = _mm512_set1_epi64((long long)a[p * pstep + k]);
#pragma GCC unroll 8
      for (int g = 0; g < NG; ++g) {
        const __m512i wv = _mm512_loadu_si512(wt + g * gstride + k * kLanes);
#pragma GCC unroll 4
        for (int p = 0; p < P; ++p)
          acc[p][g] = _mm512_add_epi64(
              acc[p][g], _mm512_popcnt_epi64(_mm512_xor_si512(av[p], wv)));
      }
    }
  }
}

// Pixels per accum() call in a row's interior: up to 24 accumulators (+
// broadcasts and a weight) fit the 32 zmm; with cw = 2 GCC peels the word
// loop and 3 pixels spill (measured).
constexpr int row_pixels(int ng, int cw) {
  return ng <= 4 ? 4 : cw == 2 ? 2 : 3;
}

#include "row_items.h"
#undef MMB_ISA

}  // namespace avx512
}  // namespace mmb
#endif  // MMB_X86
