// The whole stack of binary blocks in one call: one OpenMP region for the
// network, a barrier between steps, buffers owned by the caller and reused
// across calls. Between the stem and the head nothing returns to Python,
// so batch 1 pays neither per-layer interpreter and ctypes overhead nor a
// thread fork per layer.
//
// Before the blocks, optionally (PoolDesc): the stem's max-pool, fused
// with the sign packing of its output, so the stem conv's 4x larger map is
// read once and the pooled pixels are packed while still in L1.
//
// Per block: identity = x, or avg-pool (stride x stride, ceil mode,
// padding not counted) + 1x1 conv with the BN folded in (the downsample);
// then its one or two binary convs on the packed signs, the last one with
// the residual add (and the block's RPReLU, if any); each conv's output
// bits are thresholded for the conv that reads them. The real-valued steps round exactly as the PyTorch
// reference path (reference.py: downsample_torch) does:
//   pooled = (((0 + a) + b) + c) + d, the missing taps of a border window
//            adding 0, then / count
//   y[co]  = ((x[0] * w[co][0] + x[1] * w[co][1]) + ...) + bias[co],
//            each product and sum rounded (no FMA contraction).
#pragma once
#include <omp.h>

#include "bitpack.h"
#include "common.h"

namespace mmb {

// One block as the Python side lays it out (engine.py: BlockDesc).
struct BlockDesc {
  int64_t cin, cout, stride, nconv;
  int64_t pad_t[2], pad_l[2];  // of conv 0 and conv 1 (see ConvArgs)
  const uint64_t *wgt[2];  // engine weight layout, conv 0 and conv 1
  const float *scale[2], *shift[2];
  const float *down_wt;    // (cin, cout): the 1x1 weight transposed, or null
  const float *down_bias;  // (cout)
  // ReActNet's parts, null where absent: the sign thresholds of conv 0's
  // and conv 1's inputs (-RSign bias), the RPReLU after the residual add
  const float *thr[2];
  const float *act_b1, *act_slope, *act_b2;
};

// A max-pool window (kernel k, stride s) and its output size; pad_t /
// pad_l: the padded rows / columns before the input (PyTorch's padding, or
// TensorFlow's 'same' split, see reference.py: max_pool_geometry).
struct PoolDesc {
  int64_t k, s, pad_t, pad_l, ho, wo;
};

// Rows [r0, r1) of the avg-pool of x (n*h rows... as output rows of the
// pooled map) -- output pixel range [p0, p1) of the pooled map.
inline void avg_pool_pixels(const float *x, int64_t h, int64_t w, int64_t c,
                            int64_t s, int64_t ho, int64_t wo, int64_t p0,
                            int64_t p1, float *out) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t img = p / (ho * wo), rem = p % (ho * wo);
    const int64_t oy = rem / wo, ox = rem % wo;
    float *o = out + p * c;
    for (int64_t k = 0; k < c; ++k) o[k] = 0.0f;
    int count = 0;
    for (int64_t dy = 0; dy < s; ++dy)
      for (int64_t dx = 0; dx < s; ++dx) {
        const int64_t iy = oy * s + dy, ix = ox * s + dx;
        if (iy >= h || ix >= w) continue;  // adds 0 in the reference
        const float *xi = x + ((img * h + iy) * w + ix) * c;
        for (int64_t k = 0; k < c; ++k) o[k] = o[k] + xi[k];
        ++count;
      }
    const float d = (float)count;
    for (int64_t k = 0; k < c; ++k) o[k] = o[k] / d;
  }
}

// y[p][co] for pixels [p0, p1): the 1x1 conv, input channel order.
// Register blocked: kPix pixels x kCo output channels of accumulators are
// carried through the whole input-channel loop (the order of operations
// per element is unchanged, so blocking changes no bit); tails take the
// same loop one pixel / channel at a time.
// kVec: the floats of one native register (the engine is built with
// -march=native). A wider generic vector is split by GCC into pieces that
// spill: with 16-float vectors on an AVX2-only CPU, the downsample and
// max-pool took twice as long as all the binary convs together.
#if defined(__AVX512F__)
constexpr int kVec = 16;
#elif defined(__AVX__)
constexpr int kVec = 8;
#else
constexpr int kVec = 4;  // SSE, NEON
#endif
constexpr int kPix = 4, kCo = 2 * kVec;
// GCC's generic vectors: element-wise IEEE mul and add (never contracted:
// -ffp-contract=off), so the blocking and width change no bit.
typedef float VecF __attribute__((vector_size(4 * kVec)));

inline VecF load_vec(const float *p) {
  VecF v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// Pooled pixels [p0, p1) of the max-pool P of x[n][h][w][c] into
// out[n][P.ho][P.wo][c], each pixel's signs packed into bits at once.
// PyTorch's max_pool2d bit for bit: taps outside the input are skipped
// (padding with -inf), the window is scanned row by row and a value
// replaces the maximum only if it is greater or NaN, so the first of equal
// values (-0 and +0) wins and NaN propagates.
inline void max_pool_pixels(const float *x, int64_t h, int64_t w, int64_t c,
                            const PoolDesc &P, int64_t p0, int64_t p1,
                            float *out, PackRowFn pack, const float *thr,
                            uint64_t *bits) {
  const int64_t cw = (c + 63) / 64, cv = c / kVec * kVec;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t img = p / (P.ho * P.wo), rem = p % (P.ho * P.wo);
    const int64_t y0 = rem / P.wo * P.s - P.pad_t;
    const int64_t x0 = rem % P.wo * P.s - P.pad_l;
    const int64_t ya = std::max<int64_t>(y0, 0);
    const int64_t yb = std::min<int64_t>(y0 + P.k, h);
    const int64_t xa = std::max<int64_t>(x0, 0);
    const int64_t xb = std::min<int64_t>(x0 + P.k, w);
    float *o = out + p * c;
    for (int64_t j = 0; j < cv; j += kVec) {
      VecF m = VecF{} - __builtin_inff();
      for (int64_t iy = ya; iy < yb; ++iy)
        for (int64_t ix = xa; ix < xb; ++ix) {
          const VecF v = load_vec(x + ((img * h + iy) * w + ix) * c + j);
          m = ((v > m) | (v != v)) ? v : m;
        }
      __builtin_memcpy(o + j, &m, sizeof m);
    }
    for (int64_t j = cv; j < c; ++j) {
      float m = -__builtin_inff();
      for (int64_t iy = ya; iy < yb; ++iy)
        for (int64_t ix = xa; ix < xb; ++ix) {
          const float v = x[((img * h + iy) * w + ix) * c + j];
          if (v > m || v != v) m = v;
        }
      o[j] = m;
    }
    pack(o, c, thr, bits + p * cw);
  }
}

// Pixels p .. p + np - 1 (np <= kPix), channels co0 .. co0 + kCo - 1.
inline void linear_block(const float *x, int64_t cin, const float *wt,
                         const float *bias, int64_t cout, int64_t p, int np,
                         int64_t co0, float *y) {
  VecF acc[kPix][2];
  const VecF w0 = load_vec(wt + co0), w1 = load_vec(wt + co0 + kVec);
  for (int i = 0; i < np; ++i) {
    const float xi = x[(p + i) * cin];
    acc[i][0] = xi * w0;
    acc[i][1] = xi * w1;
  }
  for (int64_t k = 1; k < cin; ++k) {
    const float *wk = wt + k * cout + co0;
    const VecF a = load_vec(wk), b = load_vec(wk + kVec);
    for (int i = 0; i < np; ++i) {
      const float xk = x[(p + i) * cin + k];
      acc[i][0] = acc[i][0] + xk * a;
      acc[i][1] = acc[i][1] + xk * b;
    }
  }
  const VecF b0 = load_vec(bias + co0), b1 = load_vec(bias + co0 + kVec);
  for (int i = 0; i < np; ++i) {
    const VecF r0 = acc[i][0] + b0, r1 = acc[i][1] + b1;
    __builtin_memcpy(y + (p + i) * cout + co0, &r0, sizeof r0);
    __builtin_memcpy(y + (p + i) * cout + co0 + kVec, &r1, sizeof r1);
  }
}

// Pixel p, the channels cb .. cout - 1 (fewer than kCo) past the blocks.
inline void linear_tail(const float *x, int64_t cin, const float *wt,
                        const float *bias, int64_t cout, int64_t p,
                        int64_t cb, float *y) {
  float acc[kCo];
  const int n = (int)(cout - cb);
  for (int j = 0; j < n; ++j) acc[j] = x[p * cin] * wt[cb + j];
  for (int64_t k = 1; k < cin; ++k)
    for (int j = 0; j < n; ++j)
      acc[j] = acc[j] + x[p * cin + k] * wt[k * cout + cb + j];
  for (int j = 0; j < n; ++j) y[p * cout + cb + j] = acc[j] + bias[cb + j];
}

inline void linear_pixels(const float *x, int64_t cin, const float *wt,
                          const float *bias, int64_t cout, int64_t p0,
                          int64_t p1, float *y) {
  const int64_t cb = cout / kCo * kCo;
  for (int64_t p = p0; p < p1; p += kPix) {
    const int np = (int)std::min<int64_t>(kPix, p1 - p);
    for (int64_t co = 0; co < cb; co += kCo)
      linear_block(x, cin, wt, bias, cout, p, np, co, y);
    if (cb < cout)
      for (int i = 0; i < np; ++i)
        linear_tail(x, cin, wt, bias, cout, p + i, cb, y);
  }
}

}  // namespace mmb
