// Shared by every part of the engine: the weight-group geometry, the SIMD
// levels, the CPU probe and the arguments of one convolution.
#pragma once
// MMB_PORTABLE: build the plain C++ kernels only, as on a CPU that is not
// x86 (the tests use it to check the aarch64 code path here).
#if (defined(__x86_64__) || defined(__i386__)) && !defined(MMB_PORTABLE)
#define MMB_X86 1
#include <immintrin.h>
#endif
#include <stdint.h>

#include <algorithm>

namespace mmb {

constexpr int kLanes = 8;        // output channels per weight group
constexpr int kChunkGroups = 8;  // groups per work item (= 64 channels)

enum Simd { kAuto = 0, kScalar = 1, kAvx2 = 2, kAvx512 = 3 };

// Highest level this CPU runs. AVX-512 needs VPOPCNTDQ as well, which is
// what makes it pay here.
inline int best_simd() {
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

// One binary 3x3 convolution (see binconv.cpp for the layouts). Any of
// out / dot / bits may be null (not produced), scale / shift / res too
// (identity). pad_t / pad_l: zero rows / columns before the input (1 for
// PyTorch's padding 1; the Python side computes them, e.g. 0 for
// TensorFlow's 'same' on stride 2 at even sizes); the output is always
// ceil(h / stride) x ceil(w / stride). ReActNet's parts, null when the
// network has none: act_b1 / act_slope / act_b2, an RPReLU after the
// residual add (v = v + b1; v = v > 0 ? v : v * slope; v = v + b2), and
// thr, the per-channel threshold of the output bits (bit = !(v < thr),
// so NaN gives 1 as training's sign does: the
// next conv's RSign, sign(v + b) with thr = -b; null: thr = 0).
struct ConvArgs {
  const uint64_t *act;
  int64_t n_img, h, w, c, cw, cout, stride, ho, wo, nchunk, groups;
  int64_t pad_t, pad_l;
  const uint64_t *wgt;
  const float *scale, *shift, *res;
  float *out;
  int32_t *dot;
  uint64_t *bits;
  const float *act_b1, *act_slope, *act_b2, *thr;
};

}  // namespace mmb
