// The per-pixel driver of the portable and AVX2 kernels: a work item is
// one output pixel and one chunk of 64 output channels; its valid taps are
// listed, count_groups sums popcount(a XOR w) over them into memory and the
// shared epilogue turns the counts into outputs.
//
// Included once per kernel, inside its namespace, after it has defined
//   MMB_ISA, struct Lanes (Counts = const int64_t *), epilogue.h, and
//   count_groups(ap, taps, nt, wgt, cw, g0, g1, counts):
//     counts[(g - g0) * 8 + l] = sum over the taps of popcount(a XOR w).
// (No include guard, on purpose.)

// Work items [i0, i1) of the conv, chunk-major: a thread sweeps many
// pixels with the same 64 channels' weights (at most 9 * 8 * 512 bytes)
// hot in L1, while the packed activations it re-reads are small (a
// 56x56x64 map is 25 KB).
MMB_ISA inline void conv_items(const ConvArgs &A, int64_t i0, int64_t i1) {
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
