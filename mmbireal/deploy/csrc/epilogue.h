// The fused epilogue, written once for every kernel: from the mismatch
// counts of one output pixel and up to 64 output channels to
//   dot = k_valid - 2 * count            (int32, optional)
//   v   = (float)dot * scale; v = v + shift; v = v + res
//                                        (each rounded: no FMA contraction)
//   v   = v + b1; v = v > 0 ? v : v * slope; v = v + b2
//                                        (RPReLU, where the block has one)
//   out = v (optional), bit = !(v < thr) (one word of packed signs; thr:
//                                        the reading conv's, else 0)
// That is exactly what the PyTorch reference path computes.
//
// Deliberately included once per instruction set, inside that kernel's
// namespace, after it has defined
//   MMB_ISA          the target attribute of its functions, and
//   struct Lanes     Counts (how eight channels' counts are held),
//                    uint32_t run(A, Counts, k_valid, pix, co, n): the
//                    per-channel work above for n <= 8 channels from co,
//                    returning their sign bits, and run_pair(A, Counts,
//                    Counts, k_valid, pix, co): the same for two full
//                    groups (16 channels), where a kernel does it faster.
// so the kernels differ only in how they hold the counts.
// (No include guard, on purpose.)

// The epilogue of one output pixel (global index pix) and one chunk of 64
// output channels whose NG groups' counts are acc[0..NG).
template <int NG>
MMB_ISA __attribute__((always_inline)) inline void epilogue(
    const ConvArgs &A, const Lanes::Counts (&acc)[NG], int64_t k_valid,
    int64_t pix, int64_t chunk) {
  const int64_t co0 = chunk * 64;
  uint64_t word = 0;
  int g = 0;
#pragma GCC unroll 4
  for (; g + 1 < NG && co0 + (g + 2) * kLanes <= A.cout; g += 2)
    word |= (uint64_t)Lanes::run_pair(A, acc[g], acc[g + 1], k_valid, pix,
                                      co0 + g * kLanes)
            << (g * kLanes);
#pragma GCC unroll 8
  for (; g < NG; ++g) {
    const int64_t co = co0 + g * kLanes;
    const int n = (int)std::min<int64_t>(kLanes, A.cout - co);
    word |= (uint64_t)Lanes::run(A, acc[g], k_valid, pix, co, n)
            << (g * kLanes);
  }
  if (A.bits) A.bits[pix * A.nchunk + chunk] = word;
}
