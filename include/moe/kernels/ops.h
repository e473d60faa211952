// Elementwise ops, activations, softmax and row reductions.
//
// Every op exists twice: moe::ref:: is the naive specification (plain loops, always built), and
// moe:: is the fast version (vectorised, threaded over rows) that tests check against it at sizes
// 1, 15, 16, 17, 63, 64, 65 and a large one. Tensors are float32; "rows" means the tensor seen as
// [rows, cols] with cols the last dimension. Output may alias input where noted.
#pragma once

#include "moe/core/enum_names.h"
#include "moe/core/tensor.h"

namespace moe {

enum class Activation { kIdentity, kRelu, kGelu, kGeluTanh, kSilu, kSigmoid, kTanh };

inline constexpr EnumName<Activation> kActivationNames[] = {
    {"identity", Activation::kIdentity}, {"relu", Activation::kRelu},
    {"gelu", Activation::kGelu},         {"gelu_tanh", Activation::kGeluTanh},
    {"silu", Activation::kSilu},         {"sigmoid", Activation::kSigmoid},
    {"tanh", Activation::kTanh}};

const char* activation_name(Activation a);
// Parses the names above; false if unknown.
bool parse_activation(const std::string& name, Activation* out);

#define MOE_DECLARE_OPS                                                                                \
  /* y = f(x); y may alias x */                                                                        \
  void activation_forward(Activation act, Tensor x, Tensor y);                                         \
  /* dx = dy · f'(x); dx may alias dy */                                                              \
  void activation_backward(Activation act, Tensor x, Tensor dy, Tensor dx);                            \
  /* y = a + b; y = a * b; y += alpha · x; x *= alpha */                                              \
  void add(Tensor a, Tensor b, Tensor y);                                                              \
  void mul(Tensor a, Tensor b, Tensor y);                                                              \
  void axpy(float alpha, Tensor x, Tensor y);                                                          \
  void scale(Tensor x, float alpha);                                                                   \
  /* y[r, :] += bias; dbias += Σ_r dy[r, :] (accumulates) */                                          \
  void add_bias_rows(Tensor y, Tensor bias);                                                           \
  void sum_rows_accumulate(Tensor dy, Tensor dbias);                                                   \
  /* Row-wise softmax and log-softmax [R, C]; y may alias x */                                         \
  void softmax_rows(Tensor x, Tensor y);                                                               \
  void log_softmax_rows(Tensor x, Tensor y);                                                           \
  /* dx = y ⊙ (dy − Σ dy⊙y) for softmax; dx = dy − softmax · Σ dy for log-softmax (y is the \
     forward output) */                                                                                \
  void softmax_rows_backward(Tensor y, Tensor dy, Tensor dx);                                          \
  void log_softmax_rows_backward(Tensor y, Tensor dy, Tensor dx);                                      \
  /* Row reductions [R, C] -> [R] */                                                                   \
  void row_sum(Tensor x, Tensor out);                                                                  \
  void row_max(Tensor x, Tensor out);                                                                  \
  void row_logsumexp(Tensor x, Tensor out);                                                            \
  /* Σ of all elements and Σ of squares, accumulated in double */                                    \
  double sum(Tensor x);                                                                                \
  double sum_squares(Tensor x);

MOE_DECLARE_OPS

namespace ref {
MOE_DECLARE_OPS
}  // namespace ref

#undef MOE_DECLARE_OPS

}  // namespace moe
