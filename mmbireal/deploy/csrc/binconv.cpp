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
//   kernel_portable.h the plain C++ kernel, pixel by pixel
//   row_items.h       the row driver of the next two kernels
//   kernel_avx2.h     the AVX2 kernel (nibble-table popcount)
//   kernel_avx512.h   the AVX-512 VPOPCNTDQ kernel
//   network.h         the real-valued steps of a block (downsample)
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
// reference path computes, so both produce identical floats. With
// ReActNet's parts the last conv of a block continues with the block's
// RPReLU, and every output bit is !(v < the reading conv's threshold).
#include <omp.h>
#include <stdint.h>

#include "bitpack.h"
#include "common.h"
#include "kernel_avx2.h"
#include "kernel_avx512.h"
#include "kernel_portable.h"
#include "network.h"
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
  if (simd == kAvx2) return avx2::conv_num_items(A);
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
  if (simd == kAvx2) return avx2::conv_items(A, i0, i1);
#endif
  portable::conv_items(A, i0, i1);
}

ConvArgs conv_args(const uint64_t *act, int64_t n_img, int64_t h, int64_t w,
                   int64_t c, const uint64_t *wgt, int64_t cout,
                   int64_t stride, int64_t pad_t, int64_t pad_l,
                   const float *scale, const float *shift,
                   const float *res, float *out, int32_t *dot,
                   uint64_t *bits) {
  ConvArgs A;
  A.act = act; A.n_img = n_img; A.h = h; A.w = w; A.c = c;
  A.pad_t = pad_t; A.pad_l = pad_l;
  A.cw = (c + 63) / 64; A.cout = cout; A.stride = stride;
  A.ho = (h - 1) / stride + 1; A.wo = (w - 1) / stride + 1;
  A.groups = (cout + kLanes - 1) / kLanes;
  A.nchunk = (cout + 63) / 64;  // = ceil(groups / 8)
  A.wgt = wgt; A.scale = scale; A.shift = shift; A.res = res;
  A.out = out; A.dot = dot; A.bits = bits;
  A.act_b1 = A.act_slope = A.act_b2 = A.thr = nullptr;
  return A;
}

// Thread t of nt: the blocks on x[n][h][w][c] (see mmb_forward).
void forward_share(const float *x, int64_t n, int64_t h, int64_t w,
                   int64_t c, const PoolDesc *pool, const BlockDesc *blocks,
                   int64_t nblocks,
                   float *feat0, float *feat1, float *ident, float *pooled,
                   uint64_t *bits0, uint64_t *bits1, float *out, int simd,
                   int t, int nt) {
  int64_t i0, i1;
  const PackRowFn pack = pick_pack_row(simd);
  const int64_t cw0 = (c + 63) / 64;
  const float *thr0 = blocks[0].thr[0];
  if (pool) {  // the pooled map in feat0: block 0 writes feat1
    share(n * pool->ho * pool->wo, t, nt, &i0, &i1);
    max_pool_pixels(x, h, w, c, *pool, i0, i1, feat0, pack, thr0, bits0);
    x = feat0;
    h = pool->ho;
    w = pool->wo;
  } else {
    share(n * h * w, t, nt, &i0, &i1);
    for (int64_t r = i0; r < i1; ++r)
      pack(x + r * c, c, thr0, bits0 + r * cw0);
  }
#pragma omp barrier
  const float *cur = x;
  uint64_t *bits = bits0, *spare = bits1;
  for (int64_t b = 0; b < nblocks; ++b) {
    const BlockDesc &B = blocks[b];
    const int64_t s = B.stride;
    const int64_t ho = (h - 1) / s + 1, wo = (w - 1) / s + 1;
    const int64_t npix = n * ho * wo;
    const bool last = b == nblocks - 1;
    float *next = last ? out : (cur == feat0 ? feat1 : feat0);
    const float *identity = cur;
    if (B.down_wt) {
      const float *src = cur;
      share(npix, t, nt, &i0, &i1);
      if (s > 1) {
        // each thread pools the pixels it then projects: no barrier
        avg_pool_pixels(cur, h, w, B.cin, s, ho, wo, i0, i1, pooled);
        src = pooled;
      }
      linear_pixels(src, B.cin, B.down_wt, B.down_bias, B.cout, i0, i1,
                    ident);
      identity = ident;  // read by the last conv, after a barrier
    }
    int64_t cin = B.cin, hh = h, ww = w, stride = s;
    for (int64_t k = 0; k < B.nconv; ++k) {
      const bool final_conv = k == B.nconv - 1;
      if (final_conv && B.down_wt && k == 0) {
#pragma omp barrier
      }
      ConvArgs A = conv_args(
          bits, n, hh, ww, cin, B.wgt[k], B.cout, stride, B.pad_t[k],
          B.pad_l[k], B.scale[k], B.shift[k], final_conv ? identity : nullptr,
          final_conv ? next : nullptr, nullptr,
          final_conv && last ? nullptr : spare);
      if (final_conv) {
        A.act_b1 = B.act_b1; A.act_slope = B.act_slope; A.act_b2 = B.act_b2;
      }
      // the threshold of the conv that reads these bits
      A.thr = !final_conv ? B.thr[k + 1]
              : last      ? nullptr
                          : blocks[b + 1].thr[0];
      conv_share(A, simd, t, nt);
#pragma omp barrier
      std::swap(bits, spare);
      cin = B.cout; hh = ho; ww = wo; stride = 1;
    }
    cur = next;
    h = ho;
    w = wo;
  }
}

}  // namespace

extern "C" {

// Bumped whenever a signature below changes (the Python side checks it).
int mmb_abi_version() { return 5; }

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
  for (int64_t r = 0; r < rows; ++r)
    pack(x + r * c, c, nullptr, out + r * cw);
}

// The binary 3x3 convolution, stride 1 or 2, pad_t / pad_l (0 or 1) zero
// rows / columns before the input (1, 1: PyTorch's padding 1). Any of out,
// dot, bits may be NULL (not produced); scale, shift, res may be NULL
// (identity). Returns 0, or -1 for an unsupported simd request / bad
// argument.
int mmb_conv3x3(const uint64_t *act, int64_t n_img, int64_t h, int64_t w,
                int64_t c, const uint64_t *wgt, int64_t cout, int64_t stride,
                int64_t pad_t, int64_t pad_l, const float *scale,
                const float *shift, const float *res, float *out,
                int32_t *dot, uint64_t *bits, int simd, int nthreads) {
  if (stride != 1 && stride != 2) return -1;
  if (pad_t < 0 || pad_t > 1 || pad_l < 0 || pad_l > 1) return -1;
  if (n_img <= 0 || h <= 0 || w <= 0 || c <= 0 || cout <= 0) return -1;
  const int best = best_simd();
  if (simd == kAuto) simd = best;
  if (simd < kScalar || simd > best) return -1;
  const ConvArgs A = conv_args(act, n_img, h, w, c, wgt, cout, stride,
                               pad_t, pad_l, scale, shift, res, out, dot,
                               bits);
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

// The binary blocks of a network on the stem's output x[n][h][w][c]
// (float), max-pooled first unless pool is null: blocks[nblocks] as
// BlockDesc; the last block's float output goes to out. Scratch buffers,
// each large enough for the largest map of any block (feat0 also for the
// pooled map): feat0, feat1 (float, between blocks), ident (float, the
// downsampled shortcut), pooled (float, the avg-pooled input of a
// downsample), bits0, bits1 (packed signs). Returns 0, or -1 for a bad
// simd request.
int mmb_forward(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                const PoolDesc *pool, const BlockDesc *blocks,
                int64_t nblocks, float *feat0, float *feat1, float *ident,
                float *pooled, uint64_t *bits0, uint64_t *bits1, float *out,
                int simd, int nthreads) {
  const int best = best_simd();
  if (simd == kAuto) simd = best;
  if (simd < kScalar || simd > best || n <= 0 || nblocks <= 0) return -1;
  const int nt = std::max(1, nthreads);
  if (nt == 1) {
    forward_share(x, n, h, w, c, pool, blocks, nblocks, feat0, feat1,
                  ident, pooled, bits0, bits1, out, simd, 0, 1);
  } else {
#pragma omp parallel num_threads(nt)
    forward_share(x, n, h, w, c, pool, blocks, nblocks, feat0, feat1,
                  ident, pooled, bits0, bits1, out, simd,
                  omp_get_thread_num(), omp_get_num_threads());
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
