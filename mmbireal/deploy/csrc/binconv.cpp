// 1-bit 3x3 convolution for Bi-Real Net inference: XOR + popcount on
// channel-packed bits, exact zero-padding correction, fused per-channel
// affine (the folded BN), residual add and sign packing of the output.
//
// Built by mmbireal/deploy/engine.py on first use (g++ -O3 -march=native
// -fopenmp -ffp-contract=off) and called through ctypes. This file is the
// C API and the dispatch; it includes, one concern each:
//   common.h          geometry, SIMD levels, CPU probe, ConvArgs
//   bitpack.h         sign packing of float activations
//   epilogue.h        the fused epilogue, written once for every kernel
//   kernel_portable.h per-pixel kernels: plain C++ and AVX2 counts
//   kernel_avx512.h   the AVX-512 VPOPCNTDQ row kernel
//   roofline.h        peak-rate micro-kernels for the benchmark
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
#include <omp.h>
#include <stdint.h>

#include "bitpack.h"
#include "common.h"
#include "kernel_avx512.h"
#include "kernel_portable.h"
#include "roofline.h"

namespace {

using namespace mmb;

// This thread's share [i0, i1) of n items split evenly over nt threads.
inline void share(int64_t n, int t, int nt, int64_t *i0, int64_t *i1) {
  *i0 = n * t / nt;
  *i1 = n * (t + 1) / nt;
}

int64_t conv_num_items(const ConvArgs &A, int simd) {
#ifdef MMB_X86
  if (simd == kAvx512) return avx512::conv_num_items(A);
#endif
  (void)simd;
  return portable::conv_num_items(A);
}

// Thread t of nt runs its share of the conv.
void conv_share(const ConvArgs &A, int simd, int t, int nt) {
  int64_t i0, i1;
  share(conv_num_items(A, simd), t, nt, &i0, &i1);
#ifdef MMB_X86
  if (simd == kAvx512) return avx512::conv_items(A, i0, i1);
  if (simd == kAvx2)
    return portable::conv_items(A, portable::count_avx2, i0, i1);
#endif
  portable::conv_items(A, portable::count_scalar, i0, i1);
}

}  // namespace

extern "C" {

// Bumped whenever a signature below changes (the Python side checks it).
int mmb_abi_version() { return 2; }

// Highest SIMD path this CPU runs: 1 scalar, 2 AVX2, 3 AVX-512 VPOPCNTDQ.
int mmb_best_simd() { return best_simd(); }

// x[rows][C] (float) -> out[rows][ceil(C/64)], bit 1 where x >= 0.
void mmb_pack_signs(const float *x, int64_t rows, int64_t c, uint64_t *out,
                    int nthreads) {
  const int64_t cw = (c + 63) / 64;
  const PackRowFn pack = pick_pack_row(best_simd());
  // Small inputs on one thread: the fork costs more than the work.
  const int nt = rows * c < (1 << 16) ? 1 : std::max(1, nthreads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t r = 0; r < rows; ++r) pack(x + r * c, c, out + r * cw);
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
  ConvArgs A;
  A.act = act; A.n_img = n_img; A.h = h; A.w = w; A.c = c;
  A.cw = (c + 63) / 64; A.cout = cout; A.stride = stride;
  A.ho = (h - 1) / stride + 1; A.wo = (w - 1) / stride + 1;
  A.groups = (cout + kLanes - 1) / kLanes;
  A.nchunk = (cout + 63) / 64;  // = ceil(groups / 8)
  A.wgt = wgt; A.scale = scale; A.shift = shift; A.res = res;
  A.out = out; A.dot = dot; A.bits = bits;
  const int nt = (int)std::min<int64_t>(std::max(1, nthreads),
                                        conv_num_items(A, simd));
  if (nt <= 1) {
    conv_share(A, simd, 0, 1);
  } else {
#pragma omp parallel num_threads(nt)
    conv_share(A, simd, omp_get_thread_num(), omp_get_num_threads());
  }
  return 0;
}

// Peak rate in MACs per second: kind 0 binary (XOR + popcount, per bit),
// 1 fp32 FMA; simd 0 = best. Each of nthreads threads runs iters loops.
double mmb_peak_rate(int kind, int simd, int64_t iters, int nthreads) {
  if (simd == kAuto) simd = best_simd();
  if (simd < kScalar || simd > best_simd() || (kind != 0 && kind != 1))
    return -1.0;
  return peak_rate(kind, simd, iters, std::max(1, nthreads));
}

}  // extern "C"
