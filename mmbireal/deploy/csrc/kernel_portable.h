// The portable kernel: one output pixel at a time, plain C++ counts
// (__builtin_popcountll, which the compiler turns into the CPU's popcount:
// POPCNT on x86, CNT on aarch64 NEON) and the shared epilogue channel by
// channel.
#pragma once
#include "common.h"

namespace mmb {
namespace portable {

#define MMB_ISA

struct Lanes {
  using Counts = const int64_t *;  // kLanes counts in memory

  static inline uint32_t run(const ConvArgs &A, Counts acc, int64_t k_valid,
                             int64_t pix, int64_t co, int n) {
    uint32_t ge = 0;
    for (int l = 0; l < n; ++l) {
      const int32_t d = (int32_t)(k_valid - 2 * acc[l]);
      const int64_t i = pix * A.cout + co + l;
      if (A.dot) A.dot[i] = d;
      if (A.out || A.bits) {
        float v = (float)d;
        if (A.scale) v = v * A.scale[co + l];
        if (A.shift) v = v + A.shift[co + l];
        if (A.res) v = v + A.res[i];
        if (A.act_b1) {  // RPReLU, as PyTorch's prelu: v > 0 ? v : a * v
          v = v + A.act_b1[co + l];
          v = v > 0.0f ? v : v * A.act_slope[co + l];
          v = v + A.act_b2[co + l];
        }
        if (A.out) A.out[i] = v;
        ge |= (uint32_t)!(v < (A.thr ? A.thr[co + l] : 0.0f)) << l;
      }
    }
    return ge;
  }

  static inline uint32_t run_pair(const ConvArgs &A, Counts acc0,
                                  Counts acc1, int64_t k_valid, int64_t pix,
                                  int64_t co) {
    return run(A, acc0, k_valid, pix, co, kLanes) |
           run(A, acc1, k_valid, pix, co + kLanes, kLanes) << kLanes;
  }
};

#include "epilogue.h"

// counts[(g - g0) * 8 + l] = sum over the taps of popcount(a XOR w).
inline void count_groups(const uint64_t *const *ap, const int *taps, int nt,
                         const uint64_t *wgt, int64_t cw, int64_t g0,
                         int64_t g1, int64_t *counts) {
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

// Work items [i0, i1) of the conv, chunk-major: a thread sweeps many
// pixels with the same 64 channels' weights (at most 9 * 8 * 512 bytes)
// hot in L1, while the packed activations it re-reads are small (a
// 56x56x64 map is 25 KB).
inline void conv_items(const ConvArgs &A, int64_t i0, int64_t i1) {
  const int64_t npix = A.n_img * A.ho * A.wo;
  int64_t counts[kChunkGroups * kLanes];
  const Lanes::Counts acc[kChunkGroups] = {
      counts,      counts + 8,  counts + 16, counts + 24,
      counts + 32, counts + 40, counts + 48, counts + 56};
  const uint64_t *ap[9];
  int taps[9];
  for (int64_t it = i0; it < i1; ++it) {
    const int64_t chunk = it / npix, p = it % npix;
    const int64_t img = p / (A.ho * A.wo), rem = p % (A.ho * A.wo);
    const int64_t oy = rem / A.wo, ox = rem % A.wo;
    int nt = 0;
    for (int ky = 0; ky < 3; ++ky) {
      const int64_t iy = oy * A.stride - A.pad_t + ky;
      if (iy < 0 || iy >= A.h) continue;
      for (int kx = 0; kx < 3; ++kx) {
        const int64_t ix = ox * A.stride - A.pad_l + kx;
        if (ix < 0 || ix >= A.w) continue;
        ap[nt] = A.act + ((img * A.h + iy) * A.w + ix) * A.cw;
        taps[nt] = 3 * ky + kx;
        ++nt;
      }
    }
    const int64_t g0 = chunk * kChunkGroups;
    const int64_t g1 = std::min<int64_t>(A.groups, g0 + kChunkGroups);
    count_groups(ap, taps, nt, A.wgt, A.cw, g0, g1, counts);
    // groups past g1 get n <= 0 channels: nothing is read or written
    epilogue<kChunkGroups>(A, acc, A.c * nt, p, chunk);
  }
}

inline int64_t conv_num_items(const ConvArgs &A) {
  return A.n_img * A.ho * A.wo * A.nchunk;
}

#undef MMB_ISA

}  // namespace portable
}  // namespace mmb
