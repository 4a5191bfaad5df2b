// The whole stack of binary blocks in one call: one OpenMP region for the
// network, a barrier between steps, buffers owned by the caller and reused
// across calls. Between the stem and the head nothing returns to Python,
// so batch 1 pays neither per-layer interpreter and ctypes overhead nor a
// thread fork per layer.
//
// Per block: identity = x, or avg-pool (stride x stride, ceil mode,
// padding not counted) + 1x1 conv with the BN folded in (the downsample);
// then its one or two binary convs on the packed signs, the last one with
// the residual add. The real-valued steps round exactly as the PyTorch
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
  const uint64_t *wgt[2];  // engine weight layout, conv 0 and conv 1
  const float *scale[2], *shift[2];
  const float *down_wt;    // (cin, cout): the 1x1 weight transposed, or null
  const float *down_bias;  // (cout)
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
inline void linear_pixels(const float *x, int64_t cin, const float *wt,
                          const float *bias, int64_t cout, int64_t p0,
                          int64_t p1, float *y) {
  for (int64_t p = p0; p < p1; ++p) {
    const float *xp = x + p * cin;
    float *yp = y + p * cout;
    for (int64_t co = 0; co < cout; ++co) yp[co] = xp[0] * wt[co];
    for (int64_t k = 1; k < cin; ++k) {
      const float xk = xp[k];
      const float *wk = wt + k * cout;
      for (int64_t co = 0; co < cout; ++co) yp[co] = yp[co] + xk * wk[co];
    }
    for (int64_t co = 0; co < cout; ++co) yp[co] = yp[co] + bias[co];
  }
}

}  // namespace mmb
