// AVX-512 VPOPCNTDQ row kernel. Work item = (64 output channels, one
// output row): the kernel rows valid for that output row are fixed, the
// interior pixels take all of them with no per-tap border checks, 2-4
// pixels share every weight load, the (at most 24) accumulators stay in
// registers and the epilogue runs eight channels per instruction. Only the
// first / last pixel of a row go through a bordered tap list.
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

// acc[p][g] = sum over the taps of popcount(a XOR w), for P pixels pstep
// words apart (act[base + aoff[t]] is the tap-t word of pixel 0; base alone
// may point outside the image, base + aoff[t] never does) and NG groups.
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

// One output pixel of row (img, oy) whose taps stop at the image border
// (the first / last column): its own tap list.
template <int NG, int CW>
MMB_ISA void border_pixel(const ConvArgs &A, int64_t img, int64_t oy,
                          int64_t ox, int64_t chunk, int ky0, int ky1) {
  const int64_t w = A.w, s = A.stride, cw = CW ? CW : A.cw;
  const int64_t gstride = 9 * cw * kLanes;
  const uint64_t *w0 = A.wgt + chunk * kChunkGroups * gstride;
  int64_t ba[9], bw[9];
  int bt = 0;
  for (int ky = ky0; ky < ky1; ++ky)
    for (int kx = 0; kx < 3; ++kx) {
      const int64_t ix = ox * s - A.pad_l + kx;
      if (ix < 0 || ix >= w) continue;
      ba[bt] = (ky * w + kx) * cw;
      bw[bt] = (3 * ky + kx) * cw * kLanes;
      ++bt;
    }
  // word index of the top-left tap (may lie outside the image; only valid
  // taps are dereferenced)
  const int64_t base =
      ((img * A.h + oy * s - A.pad_t) * w + ox * s - A.pad_l) * cw;
  __m512i acc[1][NG];
  accum<NG, 1, CW>(A.act, base, 0, ba, bw, bt, w0, gstride, cw, acc);
  epilogue<NG>(A, acc[0], A.c * bt, (img * A.ho + oy) * A.wo + ox, chunk);
}

template <int NG, int CW>
MMB_ISA void row(const ConvArgs &A, int64_t img, int64_t oy, int64_t chunk) {
  const int64_t h = A.h, w = A.w, s = A.stride, cw = CW ? CW : A.cw;
  const int64_t gstride = 9 * cw * kLanes;
  const uint64_t *w0 = A.wgt + chunk * kChunkGroups * gstride;
  const int64_t iy0 = oy * s - A.pad_t;
  const int ky0 = iy0 < 0 ? (int)-iy0 : 0;
  const int ky1 = (int)std::min<int64_t>(3, h - iy0);
  // Interior tap list (all kx) for this row.
  int64_t aoff[9], woff[9];
  int nt = 0;
  for (int ky = ky0; ky < ky1; ++ky)
    for (int kx = 0; kx < 3; ++kx) {
      aoff[nt] = (ky * w + kx) * cw;
      woff[nt] = (3 * ky + kx) * cw * kLanes;
      ++nt;
    }
  const int nky = ky1 - ky0;
  const int64_t row_pix = (img * A.ho + oy) * A.wo;
  // Interior columns: ox * s - pad_l >= 0 and ox * s - pad_l + 2 <= w - 1.
  const int64_t pl = A.pad_l;
  const int64_t xi0 = std::min<int64_t>((pl + s - 1) / s, A.wo);
  const int64_t xi1 =
      w - 3 + pl >= 0 ? std::max<int64_t>(xi0, (w - 3 + pl) / s + 1) : xi0;
  for (int64_t ox = 0; ox < xi0; ++ox)
    border_pixel<NG, CW>(A, img, oy, ox, chunk, ky0, ky1);
  const int64_t k_valid = A.c * nky * 3;
  const int64_t pstep = s * cw;
  // word index of the top-left tap of interior pixel ox
  const int64_t base0 = ((img * h + iy0) * w - pl) * cw;
  int64_t ox = xi0;
  // Up to 24 accumulators (+ broadcasts and a weight) fit the 32 zmm;
  // with cw = 2 GCC peels the word loop and 3 pixels spill (measured).
  constexpr int PW = NG <= 4 ? 4 : CW == 2 ? 2 : 3;
  for (; ox + PW <= xi1; ox += PW) {
    __m512i acc[PW][NG];
    accum<NG, PW, CW>(A.act, base0 + ox * pstep, pstep, aoff, woff, nt, w0,
                      gstride, cw, acc);
#pragma GCC unroll 4
    for (int p = 0; p < PW; ++p)
      epilogue<NG>(A, acc[p], k_valid, row_pix + ox + p, chunk);
  }
  for (; ox + 2 <= xi1; ox += 2) {
    __m512i acc[2][NG];
    accum<NG, 2, CW>(A.act, base0 + ox * pstep, pstep, aoff, woff, nt, w0,
                     gstride, cw, acc);
    epilogue<NG>(A, acc[0], k_valid, row_pix + ox, chunk);
    epilogue<NG>(A, acc[1], k_valid, row_pix + ox + 1, chunk);
  }
  for (; ox < xi1; ++ox) {
    __m512i acc[1][NG];
    accum<NG, 1, CW>(A.act, base0 + ox * pstep, 0, aoff, woff, nt, w0,
                     gstride, cw, acc);
    epilogue<NG>(A, acc[0], k_valid, row_pix + ox, chunk);
  }
  for (ox = std::max(xi1, xi0); ox < A.wo; ++ox)
    border_pixel<NG, CW>(A, img, oy, ox, chunk, ky0, ky1);
}

#undef MMB_ISA

using RowFn = void (*)(const ConvArgs &, int64_t, int64_t, int64_t);

template <int NG>
RowFn pick_row_cw(int64_t cw) {
  switch (cw) {
    case 1: return row<NG, 1>;
    case 2: return row<NG, 2>;
    case 4: return row<NG, 4>;
    case 8: return row<NG, 8>;
    default: return row<NG, 0>;
  }
}

inline RowFn pick_row(int ng, int64_t cw) {
  switch (ng) {
    case 1: return pick_row_cw<1>(cw);
    case 2: return pick_row_cw<2>(cw);
    case 3: return pick_row_cw<3>(cw);
    case 4: return pick_row_cw<4>(cw);
    case 5: return pick_row_cw<5>(cw);
    case 6: return pick_row_cw<6>(cw);
    case 7: return pick_row_cw<7>(cw);
    default: return pick_row_cw<8>(cw);
  }
}

// Work items [i0, i1) = (chunk, image row), chunk-major: a thread's block
// of rows shares the chunk's weights, which stay hot in L1.
inline void conv_items(const ConvArgs &A, int64_t i0, int64_t i1) {
  const int last_ng = (int)(A.groups - (A.nchunk - 1) * kChunkGroups);
  const RowFn full = pick_row(kChunkGroups, A.cw);
  const RowFn tail = pick_row(last_ng, A.cw);
  const int64_t rows = A.n_img * A.ho;
  for (int64_t it = i0; it < i1; ++it) {
    const int64_t chunk = it / rows, r = it % rows;
    (chunk == A.nchunk - 1 ? tail : full)(A, r / A.ho, r % A.ho, chunk);
  }
}

inline int64_t conv_num_items(const ConvArgs &A) {
  return A.nchunk * A.n_img * A.ho;
}

}  // namespace avx512
}  // namespace mmb
#endif  // MMB_X86
