// 1-bit 3x3 convolution for Bi-Real Net inference: XOR + popcount on
// channel-packed bits, exact zero-padding correction, fused per-channel
// affine (the folded BN), residual add and sign packing of the output.
//
// Built by mmbireal/deploy/engine.py on first use (g++ -O3 -march=native
// -fopenmp -ffp-contract=off) and called through ctypes.
//
// Layouts (all row-major, 64-bit words, bit j of word k = channel 64k + j,
// bit 1 = +1, bit 0 = -1; channels beyond C are 0 in both operands, so they
// never count as a mismatch):
//   activations  act[N][H][W][Cw]                 Cw   = ceil(C / 64)
//   weights      wgt[G][9][Cw][8]                 G    = ceil(Cout / 8)
//                lane l of group g is output channel 8g + l; tap t = 3ky + kx
//   outputs      out[N][Ho][Wo][Cout] (float), dot[...][Cout] (int32),
//                bits[N][Ho][Wo][CoutW]           CoutW = ceil(Cout / 64)
//
// For every output pixel only the taps inside the image are visited, and
// dot = C * n_valid - 2 * popcount(a XOR w) summed over those taps: a padded
// tap contributes exactly 0, as the training graph's zero padding of the
// binarized input does.
//
// The float epilogue is v = (float)dot * scale; v = v + shift; v = v + res,
// each rounded separately (no FMA contraction), which is what the PyTorch
// reference path computes, so both produce identical floats.
#if defined(__x86_64__) || defined(__i386__)
#define MMB_X86 1
#include <immintrin.h>
#endif
#include <omp.h>
#include <stdint.h>

#include <algorithm>

namespace {

constexpr int kLanes = 8;         // output channels per weight group
constexpr int kChunkGroups = 8;   // groups per work item (= 64 channels)

enum Simd { kAuto = 0, kScalar = 1, kAvx2 = 2, kAvx512 = 3 };

// counts[(g - g0) * 8 + l] = sum over the taps of popcount(a XOR w).
using CountFn = void (*)(const uint64_t *const *ap, const int *taps, int nt,
                         const uint64_t *wgt, int64_t cw, int64_t g0,
                         int64_t g1, int64_t *counts);

void count_scalar(const uint64_t *const *ap, const int *taps, int nt,
                  const uint64_t *wgt, int64_t cw, int64_t g0, int64_t g1,
                  int64_t *counts) {
  const int64_t gstride = 9 * cw * kLanes;
  for (int64_t g = g0; g < g1; ++g) {
    int64_t acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < nt; ++i) {
      const uint64_t *a = ap[i];
      const uint64_t *w = wgt + g * gstride + taps[i] * cw * kLanes;
      for (int64_t k = 0; k < cw; ++k) {
        const uint64_t av = a[k];
        for (int l = 0; l < kLanes; ++l)
          acc[l] += __builtin_popcountll(av ^ w[k * kLanes + l]);
      }
    }
    for (int l = 0; l < kLanes; ++l) counts[(g - g0) * kLanes + l] = acc[l];
  }
}

#ifdef MMB_X86
// x86 only; elsewhere the scalar path (__builtin_popcountll) is used.
__attribute__((target("avx2"))) inline __m256i popcount64_avx2(__m256i v) {
  // Nibble lookup per byte, then a horizontal byte sum per 64-bit lane.
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
                                       3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                       2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  const __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
                                        _mm256_shuffle_epi8(lut, hi));
  return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

__attribute__((target("avx2"))) void count_avx2(
    const uint64_t *const *ap, const int *taps, int nt, const uint64_t *wgt,
    int64_t cw, int64_t g0, int64_t g1, int64_t *counts) {
  const int64_t gstride = 9 * cw * kLanes;
  int64_t g = g0;
  // Two groups (16 output channels, 4 ymm accumulators) share each
  // broadcast activation word.
  for (; g + 2 <= g1; g += 2) {
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
    for (int i = 0; i < nt; ++i) {
      const uint64_t *a = ap[i];
      const uint64_t *w0 = wgt + g * gstride + taps[i] * cw * kLanes;
      const uint64_t *w1 = w0 + gstride;
      for (int64_t k = 0; k < cw; ++k) {
        const __m256i av = _mm256_set1_epi64x((long long)a[k]);
        const __m256i *p0 = (const __m256i *)(w0 + k * kLanes);
        const __m256i *p1 = (const __m256i *)(w1 + k * kLanes);
        c0 = _mm256_add_epi64(c0, popcount64_avx2(_mm256_xor_si256(
                                      av, _mm256_loadu_si256(p0))));
        c1 = _mm256_add_epi64(c1, popcount64_avx2(_mm256_xor_si256(
                                      av, _mm256_loadu_si256(p0 + 1))));
        c2 = _mm256_add_epi64(c2, popcount64_avx2(_mm256_xor_si256(
                                      av, _mm256_loadu_si256(p1))));
        c3 = _mm256_add_epi64(c3, popcount64_avx2(_mm256_xor_si256(
                                      av, _mm256_loadu_si256(p1 + 1))));
      }
    }
    __m256i *out = (__m256i *)(counts + (g - g0) * kLanes);
    _mm256_storeu_si256(out, c0);
    _mm256_storeu_si256(out + 1, c1);
    _mm256_storeu_si256(out + 2, c2);
    _mm256_storeu_si256(out + 3, c3);
  }
  for (; g < g1; ++g) {
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    for (int i = 0; i < nt; ++i) {
      const uint64_t *a = ap[i];
      const uint64_t *w0 = wgt + g * gstride + taps[i] * cw * kLanes;
      for (int64_t k = 0; k < cw; ++k) {
        const __m256i av = _mm256_set1_epi64x((long long)a[k]);
        const __m256i *p0 = (const __m256i *)(w0 + k * kLanes);
        c0 = _mm256_add_epi64(c0, popcount64_avx2(_mm256_xor_si256(
                                      av, _mm256_loadu_si256(p0))));
        c1 = _mm256_add_epi64(c1, popcount64_avx2(_mm256_xor_si256(
                                      av, _mm256_loadu_si256(p0 + 1))));
      }
    }
    __m256i *out = (__m256i *)(counts + (g - g0) * kLanes);
    _mm256_storeu_si256(out, c0);
    _mm256_storeu_si256(out + 1, c1);
  }
}

__attribute__((target("avx512f,avx512vpopcntdq"))) void count_avx512(
    const uint64_t *const *ap, const int *taps, int nt, const uint64_t *wgt,
    int64_t cw, int64_t g0, int64_t g1, int64_t *counts) {
  const int64_t gstride = 9 * cw * kLanes;
  int64_t g = g0;
  // Four groups (32 output channels, 4 independent zmm accumulators) share
  // each broadcast activation word.
  for (; g + 4 <= g1; g += 4) {
    __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512();
    __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
    for (int i = 0; i < nt; ++i) {
      const uint64_t *a = ap[i];
      const uint64_t *w = wgt + g * gstride + taps[i] * cw * kLanes;
      for (int64_t k = 0; k < cw; ++k) {
        const __m512i av = _mm512_set1_epi64((long long)a[k]);
        const uint64_t *wk = w + k * kLanes;
        c0 = _mm512_add_epi64(c0, _mm512_popcnt_epi64(_mm512_xor_si512(
                                      av, _mm512_loadu_si512(wk))));
        c1 = _mm512_add_epi64(c1, _mm512_popcnt_epi64(_mm512_xor_si512(
                                      av, _mm512_loadu_si512(wk + gstride))));
        c2 = _mm512_add_epi64(
            c2, _mm512_popcnt_epi64(_mm512_xor_si512(
                    av, _mm512_loadu_si512(wk + 2 * gstride))));
        c3 = _mm512_add_epi64(
            c3, _mm512_popcnt_epi64(_mm512_xor_si512(
                    av, _mm512_loadu_si512(wk + 3 * gstride))));
      }
    }
    int64_t *out = counts + (g - g0) * kLanes;
    _mm512_storeu_si512(out, c0);
    _mm512_storeu_si512(out + kLanes, c1);
    _mm512_storeu_si512(out + 2 * kLanes, c2);
    _mm512_storeu_si512(out + 3 * kLanes, c3);
  }
  for (; g < g1; ++g) {
    __m512i c0 = _mm512_setzero_si512();
    for (int i = 0; i < nt; ++i) {
      const uint64_t *a = ap[i];
      const uint64_t *w = wgt + g * gstride + taps[i] * cw * kLanes;
      for (int64_t k = 0; k < cw; ++k) {
        const __m512i av = _mm512_set1_epi64((long long)a[k]);
        c0 = _mm512_add_epi64(c0, _mm512_popcnt_epi64(_mm512_xor_si512(
                                      av, _mm512_loadu_si512(w + k * kLanes))));
      }
    }
    _mm512_storeu_si512(counts + (g - g0) * kLanes, c0);
  }
}

// ---------------------------------------------------------------------------
// AVX-512 row kernel. Work item = (64 output channels, one output row): the
// kernel rows valid for that output row are fixed, the interior pixels take
// all of them with no per-tap border checks, 2-4 pixels share every weight
// load, the (at most 24) accumulators stay in registers and the epilogue (dot, folded BN, residual, sign packing) is vectorised
// eight channels at a time. Only the first / last pixel of a row go
// through the bordered tap list.
#define MMB_AVX512_TARGET \
  __attribute__((target("avx512f,avx512vl,avx512vpopcntdq")))

struct ConvArgs {
  const uint64_t *act;
  int64_t h, w, c, cw, cout, stride, ho, wo, nchunk, groups;
  const uint64_t *wgt;
  const float *scale, *shift, *res;
  float *out;
  int32_t *dot;
  uint64_t *bits;
};

// acc[p][g] = sum over the taps of popcount(a XOR w), for P pixels pstep
// words apart (act[base + aoff[t]] is the tap-t word of pixel 0; base alone
// may point outside the image, base + aoff[t] never does) and NG groups.
template <int NG, int P, int CW>
MMB_AVX512_TARGET __attribute__((always_inline)) inline void accum_avx512(
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

// The epilogue of one output pixel (global index pix) for one chunk.
template <int NG>
MMB_AVX512_TARGET __attribute__((always_inline)) inline void epilogue_avx512(
    const ConvArgs &A, const __m512i (&acc)[NG], int64_t k_valid,
    int64_t pix, int64_t chunk) {
  const int64_t co0 = chunk * 64;
  const __m512i kv = _mm512_set1_epi64(k_valid);
  uint64_t word = 0;
#pragma GCC unroll 8
  for (int g = 0; g < NG; ++g) {
    const int64_t co = co0 + g * kLanes;
    const int64_t n = std::min<int64_t>(kLanes, A.cout - co);
    const __mmask8 m = (__mmask8)(n >= kLanes ? 0xff : (1u << n) - 1);
    const __m256i d = _mm512_cvtepi64_epi32(
        _mm512_sub_epi64(kv, _mm512_slli_epi64(acc[g], 1)));
    // Unmasked stores for full groups (masked stores are slower on AMD).
    if (A.dot) {
      if (n == kLanes)
        _mm256_storeu_si256((__m256i *)(A.dot + pix * A.cout + co), d);
      else
        _mm256_mask_storeu_epi32(A.dot + pix * A.cout + co, m, d);
    }
    if (A.out || A.bits) {
      __m256 v = _mm256_cvtepi32_ps(d);
      if (A.scale) v = _mm256_mul_ps(v, _mm256_maskz_loadu_ps(m, A.scale + co));
      if (A.shift) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, A.shift + co));
      if (A.res)
        v = _mm256_add_ps(
            v, _mm256_maskz_loadu_ps(m, A.res + pix * A.cout + co));
      if (A.out) {
        if (n == kLanes)
          _mm256_storeu_ps(A.out + pix * A.cout + co, v);
        else
          _mm256_mask_storeu_ps(A.out + pix * A.cout + co, m, v);
      }
      const __mmask8 ge =
          _mm256_mask_cmp_ps_mask(m, v, _mm256_setzero_ps(), _CMP_GE_OQ);
      word |= (uint64_t)ge << (g * kLanes);
    }
  }
  if (A.bits) A.bits[pix * A.nchunk + chunk] = word;
}

template <int NG, int CW>
MMB_AVX512_TARGET void row_avx512(const ConvArgs &A, int64_t img, int64_t oy,
                                  int64_t chunk) {
  const int64_t h = A.h, w = A.w, s = A.stride, cw = CW ? CW : A.cw;
  const int64_t gstride = 9 * cw * kLanes;
  const uint64_t *w0 = A.wgt + chunk * kChunkGroups * gstride;
  const int64_t iy0 = oy * s - 1;
  const int ky0 = iy0 < 0 ? 1 : 0;
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
  // Word index of the top-left tap of output pixel ox (may be negative or
  // outside the image; only valid taps are dereferenced).
  auto base = [&](int64_t ox) {
    return ((img * h + iy0) * w + ox * s - 1) * cw;
  };
  // Interior columns: ox * s - 1 >= 0 and ox * s + 1 <= w - 1.
  const int64_t xi0 = std::min<int64_t>(1, A.wo);
  const int64_t xi1 = w >= 2 ? std::max<int64_t>(xi0, (w - 2) / s + 1) : xi0;
  auto border = [&](int64_t ox) {
    int64_t ba[9], bw[9];
    int bt = 0;
    for (int ky = ky0; ky < ky1; ++ky)
      for (int kx = 0; kx < 3; ++kx) {
        const int64_t ix = ox * s - 1 + kx;
        if (ix < 0 || ix >= w) continue;
        ba[bt] = (ky * w + kx) * cw;
        bw[bt] = (3 * ky + kx) * cw * kLanes;
        ++bt;
      }
    __m512i acc[1][NG];
    accum_avx512<NG, 1, CW>(A.act, base(ox), 0, ba, bw, bt, w0, gstride, cw,
                            acc);
    epilogue_avx512<NG>(A, acc[0], A.c * bt, row_pix + ox, chunk);
  };
  for (int64_t ox = 0; ox < xi0; ++ox) border(ox);
  const int64_t k_valid = A.c * nky * 3;
  const int64_t pstep = s * cw;
  int64_t ox = xi0;
  // Up to 24 accumulators (+ broadcasts and a weight) fit the 32 zmm;
  // with cw = 2 GCC peels the word loop and 3 pixels spill (measured).
  constexpr int PW = NG <= 4 ? 4 : CW == 2 ? 2 : 3;
  for (; ox + PW <= xi1; ox += PW) {
    __m512i acc[PW][NG];
    accum_avx512<NG, PW, CW>(A.act, base(ox), pstep, aoff, woff, nt, w0,
                             gstride, cw, acc);
#pragma GCC unroll 4
    for (int p = 0; p < PW; ++p)
      epilogue_avx512<NG>(A, acc[p], k_valid, row_pix + ox + p, chunk);
  }
  for (; ox + 2 <= xi1; ox += 2) {
    __m512i acc[2][NG];
    accum_avx512<NG, 2, CW>(A.act, base(ox), pstep, aoff, woff, nt, w0,
                            gstride, cw, acc);
    epilogue_avx512<NG>(A, acc[0], k_valid, row_pix + ox, chunk);
    epilogue_avx512<NG>(A, acc[1], k_valid, row_pix + ox + 1, chunk);
  }
  for (; ox < xi1; ++ox) {
    __m512i acc[1][NG];
    accum_avx512<NG, 1, CW>(A.act, base(ox), 0, aoff, woff, nt, w0, gstride,
                            cw, acc);
    epilogue_avx512<NG>(A, acc[0], k_valid, row_pix + ox, chunk);
  }
  for (ox = std::max(xi1, xi0); ox < A.wo; ++ox) border(ox);
}

using RowFn = void (*)(const ConvArgs &, int64_t, int64_t, int64_t);

template <int NG>
RowFn pick_row_cw(int64_t cw) {
  switch (cw) {
    case 1: return row_avx512<NG, 1>;
    case 2: return row_avx512<NG, 2>;
    case 4: return row_avx512<NG, 4>;
    case 8: return row_avx512<NG, 8>;
    default: return row_avx512<NG, 0>;
  }
}

RowFn pick_row(int ng, int64_t cw) {
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

// One row of mmb_pack_signs: bit j of word k = (row[64k + j] >= 0), NaN -> 0
// (an ordered compare, as the scalar >=).
MMB_AVX512_TARGET void pack_row_avx512(const float *row, int64_t c,
                                       uint64_t *out) {
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
      word |= (uint64_t)_mm512_mask_cmp_ps_mask(m, v, zero, _CMP_GE_OQ)
              << (16 * q);
    }
    out[k] = word;
  }
}

#endif  // MMB_X86

int best_simd() {
#ifdef MMB_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vpopcntdq"))
    return kAvx512;
  if (__builtin_cpu_supports("avx2")) return kAvx2;
#endif
  return kScalar;
}

}  // namespace

extern "C" {

// Bumped whenever a signature below changes (the Python side checks it).
int mmb_abi_version() { return 1; }

// Highest SIMD path this CPU runs: 1 scalar, 2 AVX2, 3 AVX-512 VPOPCNTDQ.
int mmb_best_simd() { return best_simd(); }

// x[rows][C] (float) -> out[rows][ceil(C/64)], bit 1 where x >= 0.
void mmb_pack_signs(const float *x, int64_t rows, int64_t c, uint64_t *out,
                    int nthreads) {
  const int64_t cw = (c + 63) / 64;
  if (nthreads < 1) nthreads = 1;
#ifdef MMB_X86
  if (best_simd() == kAvx512) {
    // Small inputs on one thread: the fork costs more than the work.
    const int nt = rows * c < (1 << 16) ? 1 : nthreads;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < rows; ++r) pack_row_avx512(x + r * c, c, out + r * cw);
    return;
  }
#endif
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x + r * c;
    for (int64_t k = 0; k < cw; ++k) {
      const int64_t n = std::min<int64_t>(64, c - 64 * k);
      uint64_t word = 0;
      for (int64_t j = 0; j < n; ++j)
        word |= (uint64_t)(row[64 * k + j] >= 0.0f) << j;
      out[r * cw + k] = word;
    }
  }
}

// The binary 3x3 convolution, padding 1, stride 1 or 2. Any of out, dot,
// bits may be NULL (not produced); scale, shift, res may be NULL (identity).
// Returns 0, or -1 for an unsupported simd request / bad argument.
int mmb_conv3x3(const uint64_t *act, int64_t n_img, int64_t h, int64_t w,
                int64_t c, const uint64_t *wgt, int64_t cout, int64_t stride,
                const float *scale, const float *shift, const float *res,
                float *out, int32_t *dot, uint64_t *bits, int simd,
                int nthreads) {
  if (stride != 1 && stride != 2) return -1;
  if (n_img <= 0 || h <= 0 || w <= 0 || c <= 0 || cout <= 0) return -1;
  const int best = best_simd();
  if (simd == kAuto) simd = best;
  if (simd < kScalar || simd > best) return -1;
#ifdef MMB_X86
  const CountFn count = simd == kAvx512 ? count_avx512
                        : simd == kAvx2 ? count_avx2
                                        : count_scalar;
#else
  const CountFn count = count_scalar;
#endif
  const int64_t cw = (c + 63) / 64;
  const int64_t groups = (cout + kLanes - 1) / kLanes;
  const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
  const int64_t npix = n_img * ho * wo;
  const int64_t nchunk = (cout + 63) / 64;  // = ceil(groups / 8)
  const int64_t items = npix * nchunk;
  if (nthreads < 1) nthreads = 1;

#ifdef MMB_X86
  if (simd == kAvx512) {
    ConvArgs A;
    A.act = act; A.h = h; A.w = w; A.c = c; A.cw = cw; A.cout = cout;
    A.stride = stride; A.ho = ho; A.wo = wo; A.nchunk = nchunk;
    A.groups = groups; A.wgt = wgt; A.scale = scale; A.shift = shift;
    A.res = res; A.out = out; A.dot = dot; A.bits = bits;
    const int last_ng = (int)(groups - (nchunk - 1) * kChunkGroups);
    const RowFn full = pick_row(kChunkGroups, cw);
    const RowFn tail = pick_row(last_ng, cw);
    const int64_t rows = n_img * ho;
    const int64_t row_items = nchunk * rows;
    // Chunk-major rows, one contiguous block per thread: the chunk's
    // weights stay hot in L1 while the thread sweeps its rows.
    const int nt = (int)std::min<int64_t>(nthreads, row_items);
    auto run = [&](int64_t i0, int64_t i1) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t chunk = it / rows, r = it % rows;
        (chunk == nchunk - 1 ? tail : full)(A, r / ho, r % ho, chunk);
      }
    };
    if (nt <= 1) {
      run(0, row_items);
    } else {
#pragma omp parallel num_threads(nt)
      {
        const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        run(row_items * t / T, row_items * (t + 1) / T);
      }
    }
    return 0;
  }
#endif

  // Scalar / AVX2 paths.
  // Work item = (64 output channels, output pixel): enough items for every
  // thread even on the 7x7 maps of the last stage at batch 1, and a chunk
  // is exactly one word of the packed output. Chunk-major order: a thread
  // sweeps many pixels with the same 64 channels' weights (at most
  // 9 * 8 * 512 bytes) hot in L1, while the packed activations it re-reads
  // are small (a 56x56x64 map is 25 KB).
#pragma omp parallel num_threads(nthreads)
  {
    int64_t counts[kChunkGroups * kLanes];
    const uint64_t *ap[9];
    int taps[9];
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t chunk = it / npix, p = it % npix;
      const int64_t img = p / (ho * wo), rem = p % (ho * wo);
      const int64_t oy = rem / wo, ox = rem % wo;
      int nt = 0;
      for (int ky = 0; ky < 3; ++ky) {
        const int64_t iy = oy * stride - 1 + ky;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < 3; ++kx) {
          const int64_t ix = ox * stride - 1 + kx;
          if (ix < 0 || ix >= w) continue;
          ap[nt] = act + ((img * h + iy) * w + ix) * cw;
          taps[nt] = 3 * ky + kx;
          ++nt;
        }
      }
      const int64_t g0 = chunk * kChunkGroups;
      const int64_t g1 = std::min<int64_t>(groups, g0 + kChunkGroups);
      count(ap, taps, nt, wgt, cw, g0, g1, counts);

      const int64_t k_valid = c * nt;
      const int64_t co0 = chunk * 64;
      const int64_t co1 = std::min<int64_t>(cout, co0 + 64);
      uint64_t word = 0;
      for (int64_t co = co0; co < co1; ++co) {
        const int32_t d = (int32_t)(k_valid - 2 * counts[co - co0]);
        if (dot) dot[p * cout + co] = d;
        if (out || bits) {
          float v = (float)d;
          if (scale) v = v * scale[co];
          if (shift) v = v + shift[co];
          if (res) v = v + res[p * cout + co];
          if (out) out[p * cout + co] = v;
          word |= (uint64_t)(v >= 0.0f) << (co - co0);
        }
      }
      if (bits) bits[p * nchunk + chunk] = word;
    }
  }
  return 0;
}

}  // extern "C"
