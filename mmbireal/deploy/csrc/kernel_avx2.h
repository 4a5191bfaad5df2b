// The AVX2 kernel: the row driver (row_items.h) with a nibble-table
// popcount (AVX2 has no vector popcount) whose byte counts are summed as
// bytes and widened rarely, and the epilogue eight channels per
// instruction.
#pragma once
#ifdef MMB_X86
#include "common.h"
#include "kernel_portable.h"

namespace mmb {
namespace avx2 {

#define MMB_ISA __attribute__((target("avx2")))

struct Lanes {
  struct Counts {  // eight int64 counts: channels 0-3, 4-7
    __m256i lo, hi;
  };

  // run() for a full group: the scalar kernel's operations, in its order,
  // on eight channels at once (each rounded alike: no FMA, same compares).
  MMB_ISA static inline uint32_t run(const ConvArgs &A, Counts acc,
                                     int64_t k_valid, int64_t pix,
                                     int64_t co, int n) {
    if (n < kLanes) {  // the last, partial group: channel by channel
      int64_t c[kLanes];
      _mm256_storeu_si256((__m256i *)c, acc.lo);
      _mm256_storeu_si256((__m256i *)c + 1, acc.hi);
      return portable::Lanes::run(A, c, k_valid, pix, co, n);
    }
    // the low halves of the eight int64 counts (each < 2^31)
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256i counts = _mm256_blend_epi32(
        _mm256_permutevar8x32_epi32(acc.lo, even),
        _mm256_permutevar8x32_epi32(acc.hi, even), 0xf0);
    const __m256i d = _mm256_sub_epi32(_mm256_set1_epi32((int)k_valid),
                                       _mm256_slli_epi32(counts, 1));
    const int64_t i = pix * A.cout + co;
    if (A.dot) _mm256_storeu_si256((__m256i *)(A.dot + i), d);
    if (!A.out && !A.bits) return 0;
    __m256 v = _mm256_cvtepi32_ps(d);
    if (A.scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(A.scale + co));
    if (A.shift) v = _mm256_add_ps(v, _mm256_loadu_ps(A.shift + co));
    if (A.res) v = _mm256_add_ps(v, _mm256_loadu_ps(A.res + i));
    if (A.act_b1) {  // RPReLU, as PyTorch's prelu: v > 0 ? v : a * v
      v = _mm256_add_ps(v, _mm256_loadu_ps(A.act_b1 + co));
      const __m256 scaled =
          _mm256_mul_ps(v, _mm256_loadu_ps(A.act_slope + co));
      const __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
      v = _mm256_blendv_ps(scaled, v, pos);
      v = _mm256_add_ps(v, _mm256_loadu_ps(A.act_b2 + co));
    }
    if (A.out) _mm256_storeu_ps(A.out + i, v);
    const __m256 thr =
        A.thr ? _mm256_loadu_ps(A.thr + co) : _mm256_setzero_ps();
    return (uint32_t)_mm256_movemask_ps(
        _mm256_cmp_ps(v, thr, _CMP_NLT_UQ));  // NaN: 1
  }

  MMB_ISA static inline uint32_t run_pair(const ConvArgs &A, Counts acc0,
                                          Counts acc1, int64_t k_valid,
                                          int64_t pix, int64_t co) {
    return run(A, acc0, k_valid, pix, co, kLanes) |
           run(A, acc1, k_valid, pix, co + kLanes, kLanes) << kLanes;
  }
};

#include "epilogue.h"

// The popcount of each byte of v (0-8), by a nibble lookup.
MMB_ISA inline __m256i popcount_bytes(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
                                       3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                       2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  return _mm256_add_epi8(
      _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
      _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

// acc[p][g0 + g] for NB groups from g0 (see accum): 2 * P * NB byte sums
// (two ymm per group). A byte count grows by at most 8 per word, so the
// sums are widened (one horizontal add per 64-bit lane) every 31 words, or
// only at the end when the 9 taps' words fit.
template <int NB, int P, int CW, int NG>
MMB_ISA __attribute__((always_inline)) inline void accum_groups(
    const uint64_t *act, int64_t base, int64_t pstep, const int64_t *aoff,
    const int64_t *woff, int nt, const uint64_t *w0, int64_t gstride,
    int64_t cw_rt, int g0, Lanes::Counts (&acc)[P][NG]) {
  constexpr bool kWiden = !(CW && 9 * CW <= 31);
  const int64_t cw = CW ? CW : cw_rt;
  const __m256i zero = _mm256_setzero_si256();
  __m256i bytes[P][2 * NB], total[P][2 * NB];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int j = 0; j < 2 * NB; ++j) bytes[p][j] = total[p][j] = zero;
  int pending = 0;
  for (int t = 0; t < nt; ++t) {
    const uint64_t *a = act + (base + aoff[t]);
    const uint64_t *wt = w0 + g0 * gstride + woff[t];
#pragma GCC unroll 1
    for (int64_t k = 0; k < cw; ++k) {
      __m256i av[P];
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p)
        av[p] = _mm256_set1_epi64x((long long)a[p * pstep + k]);
#pragma GCC unroll 8
      for (int j = 0; j < 2 * NB; ++j) {
        const __m256i wv = _mm256_loadu_si256(
            (const __m256i *)(wt + (j / 2) * gstride + k * kLanes) + j % 2);
#pragma GCC unroll 4
        for (int p = 0; p < P; ++p)
          bytes[p][j] = _mm256_add_epi8(
              bytes[p][j], popcount_bytes(_mm256_xor_si256(av[p], wv)));
      }
      if (kWiden && ++pending == 31) {
#pragma GCC unroll 4
        for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
          for (int j = 0; j < 2 * NB; ++j) {
            total[p][j] = _mm256_add_epi64(total[p][j],
                                           _mm256_sad_epu8(bytes[p][j], zero));
            bytes[p][j] = zero;
          }
        pending = 0;
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g)
      acc[p][g0 + g] = {
          _mm256_add_epi64(total[p][2 * g],
                           _mm256_sad_epu8(bytes[p][2 * g], zero)),
          _mm256_add_epi64(total[p][2 * g + 1],
                           _mm256_sad_epu8(bytes[p][2 * g + 1], zero))};
}

// row_items.h: acc[p][g] = sum over the taps of popcount(a XOR w), in
// passes of NB groups with 8 byte sums (half the 16 ymm; GCC still spills
// some, and passes of 4 or 2 sums timed the same).
template <int NG, int P, int CW>
MMB_ISA __attribute__((always_inline)) inline void accum(
    const uint64_t *act, int64_t base, int64_t pstep, const int64_t *aoff,
    const int64_t *woff, int nt, const uint64_t *w0, int64_t gstride,
    int64_t cw_rt, Lanes::Counts (&acc)[P][NG]) {
  constexpr int NB = P >= 4 ? 1 : 4 / P;
  int g = 0;
  for (; g + NB <= NG; g += NB)
    accum_groups<NB, P, CW, NG>(act, base, pstep, aoff, woff, nt, w0,
                                gstride, cw_rt, g, acc);
  if constexpr (NG % NB != 0)
    accum_groups<NG % NB, P, CW, NG>(act, base, pstep, aoff, woff, nt, w0,
                                     gstride, cw_rt, g, acc);
}

// Pixels per accum() call in a row's interior: two share each weight load.
constexpr int row_pixels(int, int) { return 2; }

#include "row_items.h"
#undef MMB_ISA

}  // namespace avx2
}  // namespace mmb
#endif  // MMB_X86
