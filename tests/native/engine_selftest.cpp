// Self-test of the deploy engine on vectors from the PyTorch reference
// path, for builds that cannot load into Python here (a cross-compiled
// aarch64 binary run under qemu-aarch64). The vectors file is written by
// tests/test_deploy/test_packed_model.py:
//   engine_selftest <vectors file>
// The file holds cases, each: int64 n, h, w, c, cout, stride, pad_t,
// pad_l; float x
// [n*h*w*c]; uint64 weight layout [G*9*Cw*8]; float scale, shift [cout];
// float res [n*ho*wo*cout]; expected int32 dot, float out [n*ho*wo*cout],
// uint64 bits [n*ho*wo*ceil(cout/64)]. Prints "N cases ok" or the first
// mismatch, exit status 0 / 1.
#include <stdio.h>
#include <string.h>

#include <vector>

#include "binconv.cpp"

template <class T>
static bool read(FILE *f, std::vector<T> *v, int64_t n) {
  v->resize(n);
  return fread(v->data(), sizeof(T), n, f) == (size_t)n;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  FILE *f = fopen(argv[1], "rb");
  if (!f) return 2;
  int cases = 0;
  int64_t hdr[8];
  while (fread(hdr, sizeof(int64_t), 8, f) == 8) {
    const int64_t n = hdr[0], h = hdr[1], w = hdr[2], c = hdr[3];
    const int64_t cout = hdr[4], s = hdr[5], pad_t = hdr[6], pad_l = hdr[7];
    const int64_t ho = (h - 1) / s + 1, wo = (w - 1) / s + 1;
    const int64_t cw = (c + 63) / 64, groups = (cout + 7) / 8;
    const int64_t m = n * ho * wo * cout, mw = n * ho * wo * ((cout + 63) / 64);
    std::vector<float> x, scale, shift, res, want_out;
    std::vector<uint64_t> wgt, want_bits;
    std::vector<int32_t> want_dot;
    if (!read(f, &x, n * h * w * c) || !read(f, &wgt, groups * 9 * cw * 8) ||
        !read(f, &scale, cout) || !read(f, &shift, cout) ||
        !read(f, &res, m) || !read(f, &want_dot, m) ||
        !read(f, &want_out, m) || !read(f, &want_bits, mw)) {
      printf("truncated vectors file\n");
      return 1;
    }
    std::vector<uint64_t> act(n * h * w * cw), bits(mw);
    std::vector<int32_t> dot(m);
    std::vector<float> out(m);
    mmb_pack_signs(x.data(), n * h * w, c, act.data(), 2);
    for (int simd = 1; simd <= mmb_best_simd(); ++simd) {
      if (mmb_conv3x3(act.data(), n, h, w, c, wgt.data(), cout, s, pad_t,
                      pad_l, scale.data(), shift.data(), res.data(), out.data(),
                      dot.data(), bits.data(), simd, 2) != 0) {
        printf("case %d: engine refused\n", cases);
        return 1;
      }
      if (memcmp(dot.data(), want_dot.data(), m * 4) ||
          memcmp(out.data(), want_out.data(), m * 4) ||
          memcmp(bits.data(), want_bits.data(), mw * 8)) {
        printf("case %d simd %d: mismatch\n", cases, simd);
        return 1;
      }
    }
    ++cases;
  }
  printf("%d cases ok (best simd %d)\n", cases, mmb_best_simd());
  return cases > 0 ? 0 : 1;
}
