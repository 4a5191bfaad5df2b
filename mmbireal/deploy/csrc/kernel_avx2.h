// The AVX2 kernel: the per-pixel driver (pixel_items.h) with a nibble-table
// popcount (AVX2 has no vector popcount) and the epilogue eight channels
// per instruction.
#pragma once
#ifdef MMB_X86
#include "common.h"
#include "kernel_portable.h"

namespace mmb {
namespace avx2 {

#define MMB_ISA __attribute__((target("avx2")))

struct Lanes {
  using Counts = const int64_t *;  // kLanes counts in memory

  // run() for a full group: the scalar kernel's operations, in its order,
  // on eight channels at once (each rounded alike: no FMA, same compares).
  MMB_ISA static inline uint32_t run(const ConvArgs &A, Counts acc,
                                     int64_t k_valid, int64_t pix,
                                     int64_t co, int n) {
    if (n < kLanes) return portable::Lanes::run(A, acc, k_valid, pix, co, n);
    // the low halves of the eight int64 counts (each < 2^31)
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256i counts = _mm256_blend_epi32(
        _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256((const __m256i *)acc), even),
        _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256((const __m256i *)acc + 1), even),
        0xf0);
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

// NG groups (1, 2 or 4: two ymm each) from group g share each broadcast
// activation word; four keep eight byte sums in registers. Byte counts are summed for up to 31 words (31 * 8 fits
// a byte) before one horizontal sum per 64-bit lane widens them, instead
// of one per word.
template <int NG>
MMB_ISA inline void count_pair(const uint64_t *const *ap, const int *taps,
                               int nt, const uint64_t *wgt, int64_t cw,
                               int64_t g, int64_t *out) {
  const int64_t gstride = 9 * cw * kLanes;
  __m256i total[2 * NG], bytes[2 * NG];
  for (int j = 0; j < 2 * NG; ++j)
    total[j] = bytes[j] = _mm256_setzero_si256();
  int pending = 0;
  for (int i = 0; i < nt; ++i) {
    const uint64_t *a = ap[i];
    const uint64_t *w = wgt + g * gstride + taps[i] * cw * kLanes;
    for (int64_t k = 0; k < cw; ++k) {
      const __m256i av = _mm256_set1_epi64x((long long)a[k]);
      for (int j = 0; j < 2 * NG; ++j) {
        const __m256i *p =
            (const __m256i *)(w + (j / 2) * gstride + k * kLanes) + j % 2;
        bytes[j] = _mm256_add_epi8(
            bytes[j],
            popcount_bytes(_mm256_xor_si256(av, _mm256_loadu_si256(p))));
      }
      if (++pending == 31) {
        for (int j = 0; j < 2 * NG; ++j) {
          total[j] = _mm256_add_epi64(
              total[j], _mm256_sad_epu8(bytes[j], _mm256_setzero_si256()));
          bytes[j] = _mm256_setzero_si256();
        }
        pending = 0;
      }
    }
  }
  for (int j = 0; j < 2 * NG; ++j)
    _mm256_storeu_si256(
        (__m256i *)out + j,
        _mm256_add_epi64(total[j],
                         _mm256_sad_epu8(bytes[j], _mm256_setzero_si256())));
}

MMB_ISA inline void count_groups(const uint64_t *const *ap, const int *taps,
                                 int nt, const uint64_t *wgt, int64_t cw,
                                 int64_t g0, int64_t g1, int64_t *counts) {
  int64_t g = g0;
  for (; g + 4 <= g1; g += 4)
    count_pair<4>(ap, taps, nt, wgt, cw, g, counts + (g - g0) * kLanes);
  for (; g + 2 <= g1; g += 2)
    count_pair<2>(ap, taps, nt, wgt, cw, g, counts + (g - g0) * kLanes);
  for (; g < g1; ++g)
    count_pair<1>(ap, taps, nt, wgt, cw, g, counts + (g - g0) * kLanes);
}

#include "pixel_items.h"
#undef MMB_ISA

}  // namespace avx2
}  // namespace mmb
#endif  // MMB_X86
