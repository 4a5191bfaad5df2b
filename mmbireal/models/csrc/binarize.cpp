// Element-wise kernels of Bi-Real Net training on the CPU: the sign, the
// surrogate gradients and the weight binarizers of mmbireal/models/
// binarizers.py, each one pass over memory instead of the three to five
// separate PyTorch ops the same formula needs.
//
// Built by mmbireal/models/binarize_kernels.py on first use (g++ -O3
// -march=native -fopenmp -ffp-contract=off) and called through ctypes on
// float32 tensors whose elements are dense in memory.
//
// Every formula is evaluated in the same order, with the same float32
// roundings, as the PyTorch ops it replaces, so both give identical bits;
// the one exception is the per-channel mean |w| (summed in double here,
// in a different order in PyTorch: the two differ in the last bits).
// NaN gives what PyTorch's ops give: +1 from the sign, NaN from ApproxSign's
// gradient, 0 from the straight-through one.
#include <omp.h>
#include <stdint.h>

#include <cmath>

namespace {

// Below this many elements threads cost more than they save.
constexpr int64_t kMinParallel = 1 << 15;

inline float sign_nonzero(float v) {
  // +1 for v >= 0 (also -0.0) and NaN (PyTorch's sign(NaN) is 0), else -1
  return v < 0.f ? -1.f : 1.f;
}

// 2 - 2|x| clamped at 0: |x| * -2, then + 2, then clamp, as PyTorch
inline float approx_sign_grad(float v) {
  float t = std::fabs(v) * -2.f;
  t = t + 2.f;
  return t < 0.f ? 0.f : t;  // NaN < 0 is false: NaN stays
}

inline float ste_grad(float v) { return std::fabs(v) <= 1.f ? 1.f : 0.f; }

// mean |w[0..n)| in double. Independent partial sums: one running sum is a
// chain of dependent adds that the compiler may not reorder (no fast-math),
// which ran at a quarter of the memory's speed.
inline float mean_abs(const float* w, int64_t n) {
  constexpr int kParts = 8;
  double part[kParts] = {0.0};
  int64_t i = 0;
  for (; i + kParts <= n; i += kParts)
    for (int j = 0; j < kParts; ++j) part[j] += std::fabs(w[i + j]);
  double sum = 0.0;
  for (; i < n; ++i) sum += std::fabs(w[i]);
  for (int j = 0; j < kParts; ++j) sum += part[j];
  return static_cast<float>(sum / static_cast<double>(n));
}

}  // namespace

extern "C" {

int mmb_abi_version() { return 2; }

// out = sign_nonzero(x)
void mmb_sign(const float* x, float* out, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) \
    if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = sign_nonzero(x[i]);
}

// out = grad * d sign / dx at x (out may be grad); kind 0: ApproxSign,
// 1: straight-through (the binarizers' native_code). Returns 0, or -1 for
// an unknown kind (nothing written).
int mmb_mul_surrogate_grad(const float* x, const float* grad, float* out,
                           int64_t n, int kind, int threads) {
  switch (kind) {
    case 0:
#pragma omp parallel for num_threads(threads) schedule(static) \
    if (n >= kMinParallel)
      for (int64_t i = 0; i < n; ++i)
        out[i] = grad[i] * approx_sign_grad(x[i]);
      return 0;
    case 1:
#pragma omp parallel for num_threads(threads) schedule(static) \
    if (n >= kMinParallel)
      for (int64_t i = 0; i < n; ++i) out[i] = grad[i] * ste_grad(x[i]);
      return 0;
    default:
      return -1;
  }
}

// w is (rows, cols), one row per output channel. If compute_alpha,
// alpha[r] = mean |w[r]| is written first; otherwise alpha is read (or
// NULL when not scaled). out = sign_nonzero(w), times alpha[r] if scaled.
void mmb_binarize_weight(const float* w, int64_t rows, int64_t cols,
                         float* alpha, int compute_alpha, int scaled,
                         float* out, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) \
    if (rows * cols >= kMinParallel)
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    float* outr = out + r * cols;
    if (compute_alpha) alpha[r] = mean_abs(wr, cols);
    if (scaled) {
      const float a = alpha[r];
      for (int64_t c = 0; c < cols; ++c) outr[c] = sign_nonzero(wr[c]) * a;
    } else {
      for (int64_t c = 0; c < cols; ++c) outr[c] = sign_nonzero(wr[c]);
    }
  }
}

// grad *= mask(w) (times alpha[r] if alpha is not NULL); the mask is
// |w| < 1 if strict, else |w| <= 1
void mmb_weight_grad(const float* w, float* grad, const float* alpha,
                     int64_t rows, int64_t cols, int strict, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) \
    if (rows * cols >= kMinParallel)
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    float* gr = grad + r * cols;
    const float a = alpha ? alpha[r] : 1.f;
    for (int64_t c = 0; c < cols; ++c) {
      const float m = std::fabs(wr[c]);
      const bool pass = strict ? m < 1.f : m <= 1.f;
      gr[c] = gr[c] * (pass ? a : 0.f);
    }
  }
}

}  // extern "C"
