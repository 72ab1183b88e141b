// Fused float32 kernels for the BERT encoder's CPU inference path.
//
// With one thread, LibTorch spends about a third of a MiniLM forward outside the GEMMs: small
// per-head bmm calls, the mask-bias expansion, softmax, head permutes and an erf GELU that runs
// at ~2 ns per element. These kernels do the same math in one pass over memory that is already
// in cache, reading the fused QKV projection in place and writing the attention output in the
// layout the next GEMM wants. Plain C++ over raw pointers (no LibTorch), vectorised by the
// compiler; on x86-64 each kernel is also compiled for AVX2 and AVX-512 and picked at run time.
#pragma once

#include <cstdint>

namespace ms::models::cpu {

/// Shapes of one attention call: `batch` sequences of `seq` tokens, `heads` heads of `head_dim`.
struct AttentionShape {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
};

/// Scaled dot-product attention for the heads [head_begin, head_end) of the flattened
/// (sequence, head) index space.
///   qkv:       [batch * seq, 3 * heads * head_dim], rows of Q | K | V (the fused projection)
///   key_bias:  [batch, seq], added to every score of that key (0 or a very negative number)
///   key_count: [batch], keys past this index are skipped (trailing padding; their bias
///              would make their weight exactly 0 anyway)
///   out:       [batch * seq, heads * head_dim], written for every (sequence, head) in range
void attention(const float* qkv, const float* key_bias, const int64_t* key_count, float* out,
               const AttentionShape& shape, int64_t head_begin, int64_t head_end);

/// x <- x * (1 + erf(x / sqrt(2))) / 2 over n elements (BERT's exact GELU). The erf is a
/// rational approximation with absolute error below 2e-7, the size of float32 rounding.
void gelu_erf_inplace(float* x, int64_t n);

}  // namespace ms::models::cpu
