// The row driver of the AVX2 and AVX-512 kernels. Work item = (64 output
// channels, one output row): the kernel rows valid for that output row are
// fixed, the interior pixels take all of them with no per-tap border
// checks and several pixels share every weight load; the counts reach the
// epilogue in the kernel's own form (Lanes::Counts). Only the first / last
// pixel of a row go through a bordered tap list.
//
// Included once per kernel, inside its namespace, after it has defined
//   MMB_ISA, struct Lanes, epilogue.h,
//   row_pixels(ng, cw): pixels per accum() call in a row's interior, and
//   accum<NG, P, CW>(act, base, pstep, aoff, woff, nt, w0, gstride, cw,
//                    Lanes::Counts (&acc)[P][NG]):
//     acc[p][g] = sum over the nt taps of popcount(a XOR w) for P pixels
//     pstep words apart (act[base + aoff[t]] is the tap-t word of pixel 0;
//     base alone may point outside the image, base + aoff[t] never does)
//     and NG groups gstride words apart from w0 (tap t at w0 + woff[t]);
//     CW: the words per pixel, or 0 for cw at run time.
// (No include guard, on purpose.)

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
  Lanes::Counts acc[1][NG];
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
  constexpr int PW = row_pixels(NG, CW);
  for (; ox + PW <= xi1; ox += PW) {
    Lanes::Counts acc[PW][NG];
    accum<NG, PW, CW>(A.act, base0 + ox * pstep, pstep, aoff, woff, nt, w0,
                      gstride, cw, acc);
#pragma GCC unroll 4
    for (int p = 0; p < PW; ++p)
      epilogue<NG>(A, acc[p], k_valid, row_pix + ox + p, chunk);
  }
  for (; ox + 2 <= xi1; ox += 2) {
    Lanes::Counts acc[2][NG];
    accum<NG, 2, CW>(A.act, base0 + ox * pstep, pstep, aoff, woff, nt, w0,
                     gstride, cw, acc);
    epilogue<NG>(A, acc[0], k_valid, row_pix + ox, chunk);
    epilogue<NG>(A, acc[1], k_valid, row_pix + ox + 1, chunk);
  }
  for (; ox < xi1; ++ox) {
    Lanes::Counts acc[1][NG];
    accum<NG, 1, CW>(A.act, base0 + ox * pstep, 0, aoff, woff, nt, w0,
                     gstride, cw, acc);
    epilogue<NG>(A, acc[0], k_valid, row_pix + ox, chunk);
  }
  for (ox = std::max(xi1, xi0); ox < A.wo; ++ox)
    border_pixel<NG, CW>(A, img, oy, ox, chunk, ky0, ky1);
}

using RowFn = void (*)(const ConvArgs &, int64_t, int64_t, int64_t);

// Full chunks get a row specialised for their word count; a partial last
// chunk (C_out not a multiple of 64: rare, and small) reads it at run time,
// which keeps the build to a quarter of the instantiations.
inline RowFn pick_row(int ng, int64_t cw) {
  switch (ng) {
    case 1: return row<1, 0>;
    case 2: return row<2, 0>;
    case 3: return row<3, 0>;
    case 4: return row<4, 0>;
    case 5: return row<5, 0>;
    case 6: return row<6, 0>;
    case 7: return row<7, 0>;
  }
  switch (cw) {
    case 1: return row<kChunkGroups, 1>;
    case 2: return row<kChunkGroups, 2>;
    case 4: return row<kChunkGroups, 4>;
    case 8: return row<kChunkGroups, 8>;
    default: return row<kChunkGroups, 0>;
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
