// Sign packing: x[rows][C] (float) -> out[rows][ceil(C / 64)], bit j of
// word k = !(x[64k + j] < t[64k + j]) with per-channel thresholds t (null:
// 0; t = -b is RSign's sign(x + b), exactly: x + b rounds to >= 0 iff
// x >= -b); NaN -> 1, the +1 training gives it (an unordered not-less
// compare); bits past C are 0.
#pragma once
#include "common.h"

namespace mmb {

inline void pack_row_scalar(const float *row, int64_t c, const float *thr,
                            uint64_t *out) {
  const int64_t cw = (c + 63) / 64;
  for (int64_t k = 0; k < cw; ++k) {
    const int64_t n = std::min<int64_t>(64, c - 64 * k);
    uint64_t word = 0;
    for (int64_t j = 0; j < n; ++j)
      word |= (uint64_t)!(row[64 * k + j] < (thr ? thr[64 * k + j] : 0.0f))
              << j;
    out[k] = word;
  }
}

#ifdef MMB_X86
__attribute__((target("avx512f"))) inline void pack_row_avx512(
    const float *row, int64_t c, const float *thr, uint64_t *out) {
  const __m512 zero = _mm512_setzero_ps();
  const int64_t cw = (c + 63) / 64;
  for (int64_t k = 0; k < cw; ++k) {
    uint64_t word = 0;
    for (int q = 0; q < 4; ++q) {
      const int64_t j0 = 64 * k + 16 * q;
      const int64_t n = std::min<int64_t>(16, c - j0);
      if (n <= 0) break;
      const __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(m, row + j0);
      const __m512 t = thr ? _mm512_maskz_loadu_ps(m, thr + j0) : zero;
      word |= (uint64_t)_mm512_mask_cmp_ps_mask(m, v, t, _CMP_NLT_UQ)
              << (16 * q);
    }
    out[k] = word;
  }
}
#endif

using PackRowFn = void (*)(const float *, int64_t, const float *,
                          uint64_t *);

inline PackRowFn pick_pack_row(int simd) {
#ifdef MMB_X86
  if (simd == kAvx512) return pack_row_avx512;
#endif
  (void)simd;
  return pack_row_scalar;
}

}  // namespace mmb
