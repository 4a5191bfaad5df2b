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

#endif  // MMB_X86

int best_simd() {
#ifdef MMB_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") &&
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
