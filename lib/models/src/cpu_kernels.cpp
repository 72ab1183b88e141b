#include "cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// Each kernel body is compiled three times on x86-64 (baseline, AVX2 + FMA, AVX-512) and the
// widest one the CPU supports is picked on first use, so the binary still runs on any x86-64.
#if defined(__x86_64__) && defined(__GNUC__)
#define MS_KERNEL_DISPATCH 1
#define MS_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,f16c")))
#define MS_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2,f16c")))
#else
#define MS_KERNEL_DISPATCH 0
#endif
#define MS_ALWAYS_INLINE inline __attribute__((always_inline))

namespace ms::models::cpu {
namespace {

// e^x with relative error ~2e-7, written so that loops over it vectorise (no calls, no
// branches): x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7, 2^n built in the
// exponent bits. Inputs below -87 give exactly 0 (a masked attention score must weigh nothing).
MS_ALWAYS_INLINE float exp_approx(float x) {
  // Ternaries rather than std::fmin/fmax, whose NaN rules keep GCC from vectorising the loop.
  const float low = x < -87.0f ? -87.0f : x;
  const float clamped = low > 88.0f ? 88.0f : low;
  // Round to the nearest integer by adding and removing 1.5 * 2^23.
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = clamped - n * 0.693145751953125f - n * 1.428606765330187e-06f;  // ln2 hi + lo
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);  // 2^n
  return x < -87.0f ? 0.0f : p * scale;
}

// Keys are scored in blocks of this many (one AVX-512 register, two AVX2 ones); a sequence's
// keys are padded up to a whole block with zero keys whose bias masks them out.
constexpr int64_t kKeyBlock = 16;

// kDim > 0: the head size is known at compile time (32 for MiniLM, 64 for BERT-base), so the
// per-query output row stays in registers; kDim == 0 reads it from `shape`.
template <int64_t kDim>
MS_ALWAYS_INLINE void attention_heads(const float* qkv, const float* key_bias,
                                      const int64_t* key_count, float* out,
                                      const AttentionShape& shape, int64_t head_begin,
                                      int64_t head_end) {
  const int64_t d = kDim > 0 ? kDim : shape.head_dim;
  const int64_t t = shape.seq, heads = shape.heads;
  const int64_t hd = heads * d, row = 3 * hd;
  const int64_t t_pad = (t + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  constexpr float kMasked = std::numeric_limits<float>::lowest();
  // One head's keys, transposed ([d, n_pad]: a block of scores is then one FMA per dimension),
  // its values ([n, d]) and the key bias, copied once and reused by every query.
  std::vector<float> keys_t(static_cast<size_t>(d * t_pad)), values(static_cast<size_t>(t * d));
  std::vector<float> bias(static_cast<size_t>(t_pad)), scores(static_cast<size_t>(t_pad));
  std::vector<float> runtime_acc(kDim > 0 ? 0 : static_cast<size_t>(d));
  for (int64_t index = head_begin; index < head_end; ++index) {
    const int64_t seq = index / heads, head = index % heads;
    int64_t n = key_count[seq];
    if (n <= 0 || n > t) n = t;  // a fully masked row attends to everything, as softmax would
    const int64_t n_pad = (n + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
    const float* base = qkv + seq * t * row;
    for (int64_t c = 0; c < n; ++c) {
      const float* k = base + c * row + hd + head * d;
      for (int64_t e = 0; e < d; ++e) keys_t[e * n_pad + c] = k[e];
      std::memcpy(&values[c * d], base + c * row + 2 * hd + head * d, sizeof(float) * d);
      bias[c] = key_bias[seq * t + c];
    }
    for (int64_t c = n; c < n_pad; ++c) {
      for (int64_t e = 0; e < d; ++e) keys_t[e * n_pad + c] = 0.0f;
      bias[c] = kMasked;
    }
    for (int64_t r = 0; r < t; ++r) {
      const float* q = base + r * row + head * d;
      float* s = scores.data();
      for (int64_t block = 0; block < n_pad; block += kKeyBlock) {
        float acc[kKeyBlock];
        for (int64_t j = 0; j < kKeyBlock; ++j) acc[j] = bias[block + j];
        for (int64_t e = 0; e < d; ++e) {
          const float qe = q[e] * scale;
          const float* k = &keys_t[e * n_pad + block];
          for (int64_t j = 0; j < kKeyBlock; ++j) acc[j] += qe * k[j];
        }
        for (int64_t j = 0; j < kKeyBlock; ++j) s[block + j] = acc[j];
      }
      float top = s[0];
      for (int64_t c = 1; c < n; ++c) top = s[c] > top ? s[c] : top;
      float sum = 0.0f;
      for (int64_t c = 0; c < n_pad; ++c) s[c] = exp_approx(s[c] - top);  // padding gives 0
      for (int64_t c = 0; c < n; ++c) sum += s[c];
      const float inv = 1.0f / sum;
      float fixed_acc[kDim > 0 ? kDim : 1];
      float* acc = kDim > 0 ? fixed_acc : runtime_acc.data();
      for (int64_t e = 0; e < d; ++e) acc[e] = 0.0f;
      for (int64_t c = 0; c < n; ++c) {
        const float p = s[c] * inv;
        const float* v = &values[c * d];
        for (int64_t e = 0; e < d; ++e) acc[e] += p * v[e];
      }
      std::memcpy(out + (seq * t + r) * hd + head * d, acc, sizeof(float) * d);
    }
  }
}

MS_ALWAYS_INLINE void attention_body(const float* qkv, const float* key_bias,
                                     const int64_t* key_count, float* out,
                                     const AttentionShape& shape, int64_t head_begin,
                                     int64_t head_end) {
  switch (shape.head_dim) {
    case 32:
      return attention_heads<32>(qkv, key_bias, key_count, out, shape, head_begin, head_end);
    case 64:
      return attention_heads<64>(qkv, key_bias, key_count, out, shape, head_begin, head_end);
    default:
      return attention_heads<0>(qkv, key_bias, key_count, out, shape, head_begin, head_end);
  }
}

MS_ALWAYS_INLINE void gelu_body(float* x, int64_t n) {
  // erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7):
  //   erf(a) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-a^2),  t = 1 / (1 + p a),  a >= 0
  constexpr float p = 0.3275911f, a1 = 0.254829592f, a2 = -0.284496736f, a3 = 1.421413741f,
                  a4 = -1.453152027f, a5 = 1.061405429f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float a = std::fabs(v) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + p * a);
    const float poly = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))));
    const float erf_abs = 1.0f - poly * exp_approx(-a * a);
    const float erf = std::copysign(erf_abs, v);
    x[i] = 0.5f * v * (1.0f + erf);
  }
}

enum class Isa { kBaseline, kAvx2, kAvx512 };

Isa best_isa() {
#if MS_KERNEL_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

const Isa kIsa = best_isa();

#if MS_KERNEL_DISPATCH
MS_TARGET_AVX512 void attention_avx512(const float* qkv, const float* key_bias,
                                       const int64_t* key_count, float* out,
                                       const AttentionShape& shape, int64_t begin, int64_t end) {
  attention_body(qkv, key_bias, key_count, out, shape, begin, end);
}
MS_TARGET_AVX2 void attention_avx2(const float* qkv, const float* key_bias,
                                   const int64_t* key_count, float* out,
                                   const AttentionShape& shape, int64_t begin, int64_t end) {
  attention_body(qkv, key_bias, key_count, out, shape, begin, end);
}
MS_TARGET_AVX512 void gelu_avx512(float* x, int64_t n) { gelu_body(x, n); }
MS_TARGET_AVX2 void gelu_avx2(float* x, int64_t n) { gelu_body(x, n); }
#endif

}  // namespace

void attention(const float* qkv, const float* key_bias, const int64_t* key_count, float* out,
               const AttentionShape& shape, int64_t head_begin, int64_t head_end) {
#if MS_KERNEL_DISPATCH
  if (kIsa == Isa::kAvx512)
    return attention_avx512(qkv, key_bias, key_count, out, shape, head_begin, head_end);
  if (kIsa == Isa::kAvx2)
    return attention_avx2(qkv, key_bias, key_count, out, shape, head_begin, head_end);
#endif
  attention_body(qkv, key_bias, key_count, out, shape, head_begin, head_end);
}

void gelu_erf_inplace(float* x, int64_t n) {
#if MS_KERNEL_DISPATCH
  if (kIsa == Isa::kAvx512) return gelu_avx512(x, n);
  if (kIsa == Isa::kAvx2) return gelu_avx2(x, n);
#endif
  gelu_body(x, n);
}

}  // namespace ms::models::cpu
