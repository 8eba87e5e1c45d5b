// The WGAN-GP steps of a plain MLP (Linear, then ReLU/LeakyReLU and Linear in turn, one output),
// written out for the CPU: the same algorithm as wgan/nets/fastgrad.py's penalised_loss_backward
// (stacked real, fake and interpolated rows; one pass down the adjoints for the score gradients and
// the input-gradient chain together; one pass up the chain; one weight gradient per layer), with the
// element-wise work fused into single passes over memory and no interpreter between the operations.
// Matrix products are ATen's (MKL / oneDNN). Built on first use by wgan/nets/native.py.
//
// Layer l maps H[l] (rows x n_l) to H[l+1] = act_l(H[l] W_l^T + b_l); the last layer has no
// activation and one output. An activation's slope is 1 where its result is > 0, else s_l (0 for
// ReLU); the result is > 0 exactly where the input is, so the results alone fix the pieces.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

using at::Tensor;

constexpr int64_t kGrain = 16384;  // elements per parallel chunk

// A layer without a bias passes an empty tensor.
bool has(const Tensor& b) { return b.defined() && b.numel() > 0; }

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, cols)); }

// h = act(h + b), in place; b may be undefined.
template <typename T>
void bias_act_(Tensor& h, const Tensor& b, double slope) {
  const int64_t rows = h.size(0), cols = h.size(1);
  T* hp = h.data_ptr<T>();
  const T* bp = has(b) ? b.data_ptr<T>() : nullptr;
  const T s = static_cast<T>(slope);
  at::parallel_for(0, rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* row = hp + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        T v = row[c] + (bp ? bp[c] : T(0));
        row[c] = v > T(0) ? v : v * s;
      }
    }
  });
}

// out = d * slope(t) where t is an activation's result; out may alias d (not t, unless out is t).
template <typename T>
void mask_(T* out, const T* d, const T* t, int64_t rows, int64_t cols, double slope) {
  const T s = static_cast<T>(slope);
  at::parallel_for(0, rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * cols; i < r1 * cols; ++i) {
      out[i] = t[i] > T(0) ? d[i] : (s == T(0) ? T(0) : d[i] * s);
    }
  });
}

// a[i, j] = coef[i] * w[j] * slope(t[i, j]): the top layer's adjoint (one output) and the mask below it.
template <typename T>
void seed_(T* a, const T* coef, const T* w, const T* t, int64_t rows, int64_t cols, double slope) {
  const T s = static_cast<T>(slope);
  at::parallel_for(0, rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T c0 = coef[r];
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t i = r * cols + c;
        const T v = c0 * w[c];
        a[i] = t[i] > T(0) ? v : (s == T(0) ? T(0) : v * s);
      }
    }
  });
}

void check_mlp(const std::vector<Tensor>& weights, const std::vector<Tensor>& biases,
               const std::vector<double>& slopes) {
  TORCH_CHECK(weights.size() >= 2 && biases.size() == weights.size() && slopes.size() + 1 == weights.size(),
              "wgan native: an MLP needs L >= 2 weights, L biases and L - 1 slopes");
  TORCH_CHECK(weights.back().size(0) == 1, "wgan native: the last layer must have one output");
  for (const auto& w : weights) {
    TORCH_CHECK(w.device().is_cpu() && w.is_contiguous() && w.dim() == 2, "wgan native: CPU contiguous weights");
  }
}

constexpr int64_t kSmallK = 8;  // below this many inputs a layer is a fused loop: BLAS is slow at tiny K

// out = act(x W^T + b) for a layer with few inputs, in one pass (no product call).
template <typename T>
void small_k_linear_act(T* out, const T* x, const T* w, const T* b, int64_t rows, int64_t k, int64_t cols,
                        double slope) {
  const T s = static_cast<T>(slope);
  at::parallel_for(0, rows, row_grain(cols * k), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * k;
      T* o = out + r * cols;
      for (int64_t c = 0; c < cols; ++c) o[c] = b ? b[c] : T(0);
      for (int64_t j = 0; j < k; ++j) {
        const T xv = xr[j];
        for (int64_t c = 0; c < cols; ++c) o[c] += xv * w[c * k + j];
      }
      for (int64_t c = 0; c < cols; ++c) o[c] = o[c] > T(0) ? o[c] : o[c] * s;
    }
  });
}

// Forward of all but the last layer over x; returns H[0..L-1] (H[0] = x).
std::vector<Tensor> hidden_forward(const Tensor& x, const std::vector<Tensor>& weights,
                                   const std::vector<Tensor>& biases, const std::vector<double>& slopes) {
  std::vector<Tensor> H{x};
  for (size_t l = 0; l + 1 < weights.size(); ++l) {
    const Tensor& w = weights[l];
    const Tensor& in = H.back();
    Tensor h;
    if (w.size(1) < kSmallK) {
      h = at::empty({in.size(0), w.size(0)}, in.options());
      AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "small_k_linear_act", [&] {
        small_k_linear_act<scalar_t>(h.data_ptr<scalar_t>(), in.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                     has(biases[l]) ? biases[l].data_ptr<scalar_t>() : nullptr, in.size(0),
                                     w.size(1), w.size(0), slopes[l]);
      });
    } else {
      h = at::mm(in, w.t());
      AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "bias_act_", [&] { bias_act_<scalar_t>(h, biases[l], slopes[l]); });
    }
    H.push_back(h);
  }
  return H;
}

Tensor last_layer(const Tensor& h, const Tensor& w, const Tensor& b) {
  Tensor s = at::mv(h, w[0]);
  return has(b) ? s.add_(b) : s;
}

}  // namespace

// The whole MLP forward (every layer, the last without activation), no graph: (N, d) -> (N, out).
Tensor mlp_forward(Tensor x, std::vector<Tensor> weights, std::vector<Tensor> biases, std::vector<double> slopes) {
  TORCH_CHECK(weights.size() == biases.size() && slopes.size() + 1 == weights.size(), "wgan native: bad MLP");
  auto H = hidden_forward(x.contiguous(), weights, biases, slopes);
  const Tensor& b = biases.back();
  return has(b) ? at::addmm(b, H.back(), weights.back().t()) : at::mm(H.back(), weights.back().t());
}

// L = E[f(fake)] - E[f(real)] + gain * E[(|grad f(x_hat)| - 1)^2] (one-sided: max(0, .)^2) and the
// gradients of every weight and bias. Returns (loss, scores (N_real + N_fake), penalty term, norms
// (M), weight grads..., bias grads... (empty where a layer has no bias)).
std::vector<Tensor> wgan_gp_critic(Tensor x_real, Tensor x_fake, Tensor x_hat, std::vector<Tensor> weights,
                                   std::vector<Tensor> biases, std::vector<double> slopes, double gain,
                                   bool one_sided, double eps) {
  check_mlp(weights, biases, slopes);
  const size_t L = weights.size();
  const int64_t n = x_real.size(0), f = n + x_fake.size(0), m = x_hat.size(0), r = f + m;
  TORCH_CHECK(n > 0 && f > n && m > 0, "wgan native: empty batch");
  Tensor x = at::cat({x_real, x_fake, x_hat});
  auto H = hidden_forward(x, weights, biases, slopes);
  Tensor scores = last_layer(H[L - 1].narrow(0, 0, f), weights[L - 1], biases[L - 1]);
  // d loss / d score: -1/n (real), +1/(f - n) (fake); the chain's seed is 1 on the interpolates' rows
  Tensor coef = at::empty({r}, x.options());
  coef.narrow(0, 0, n).fill_(-1.0 / n);
  coef.narrow(0, n, f - n).fill_(1.0 / (f - n));
  coef.narrow(0, f, m).fill_(1.0);
  Tensor loss = scores.narrow(0, n, f - n).mean() - scores.narrow(0, 0, n).mean();

  // down: A[l] is the stacked value entering layer l's adjoint (R x n_{l+1}), for l < L - 1
  std::vector<Tensor> A(L - 1);
  Tensor g;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "wgan_gp_down", [&] {
    const Tensor& top = H[L - 1];
    A[L - 2] = at::empty_like(top);
    seed_<scalar_t>(A[L - 2].data_ptr<scalar_t>(), coef.data_ptr<scalar_t>(), weights[L - 1].data_ptr<scalar_t>(),
                    top.data_ptr<scalar_t>(), r, top.size(1), slopes[L - 2]);
    for (size_t l = L - 2; l >= 1; --l) {
      Tensor t = at::mm(A[l], weights[l]);  // R x n_l
      mask_<scalar_t>(t.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), H[l].data_ptr<scalar_t>(), r, t.size(1),
                      slopes[l - 1]);
      A[l - 1] = t;
    }
    g = at::mm(A[0].narrow(0, f, m), weights[0]);  // the input gradient at x_hat, M x d
  });

  // the penalty and its gradient with respect to g
  Tensor norms = (g.square().sum(1) + eps).sqrt_();
  Tensor excess = norms - 1.0;
  if (one_sided) excess.clamp_min_(0.0);
  Tensor term = excess.square().mean() * gain;
  Tensor d_g = g * (excess * (2.0 * gain / m) / norms).unsqueeze(1);

  // up the chain on the interpolates' rows: each layer's input-side gradient replaces those rows of
  // its input (whose other use, the pieces, is done)
  H[0].narrow(0, f, m).copy_(d_g);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "wgan_gp_up", [&] {
    for (size_t l = 0; l + 1 < L; ++l) {
      Tensor u = at::mm(H[l].narrow(0, f, m), weights[l].t());  // M x n_{l+1}
      Tensor rows = H[l + 1].narrow(0, f, m);
      mask_<scalar_t>(rows.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(), rows.data_ptr<scalar_t>(), m, u.size(1),
                      slopes[l]);
    }
  });

  std::vector<Tensor> out{loss, scores, term, norms};
  std::vector<Tensor> bias_grads;
  for (size_t l = 0; l + 1 < L; ++l) {
    out.push_back(at::mm(A[l].t(), H[l]));
    bias_grads.push_back(has(biases[l]) ? A[l].narrow(0, 0, f).sum(0) : at::empty({0}, x.options()));
  }
  out.push_back(at::mv(H[L - 1].t(), coef).unsqueeze(0));
  bias_grads.push_back(has(biases[L - 1]) ? coef.narrow(0, 0, f).sum(0, true) : at::empty({0}, x.options()));
  out.insert(out.end(), bias_grads.begin(), bias_grads.end());
  return out;
}

// The generator's Wasserstein loss -E[f(G(z))] through an MLP generator (last layer without
// activation) and an MLP critic, and the gradients of the generator's weights and biases (the
// critic's are not computed). Returns (loss, weight grads..., bias grads... (empty where none)).
std::vector<Tensor> wgan_generator(Tensor z, std::vector<Tensor> gw, std::vector<Tensor> gb, std::vector<double> gs,
                                   std::vector<Tensor> cw, std::vector<Tensor> cb, std::vector<double> cs) {
  check_mlp(cw, cb, cs);
  TORCH_CHECK(gw.size() >= 2 && gb.size() == gw.size() && gs.size() + 1 == gw.size(), "wgan native: bad generator");
  const size_t Lg = gw.size(), Lc = cw.size();
  const int64_t n = z.size(0);
  auto G = hidden_forward(z.contiguous(), gw, gb, gs);
  Tensor x = has(gb[Lg - 1]) ? at::addmm(gb[Lg - 1], G[Lg - 1], gw[Lg - 1].t()) : at::mm(G[Lg - 1], gw[Lg - 1].t());
  auto C = hidden_forward(x, cw, cb, cs);
  Tensor loss = last_layer(C[Lc - 1], cw[Lc - 1], cb[Lc - 1]).mean().neg_();
  Tensor coef = at::full({n}, -1.0 / n, z.options());
  std::vector<Tensor> wg(Lg), bg(Lg);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "wgan_generator", [&] {
    // down the critic to its input: d loss / d x
    const Tensor& top = C[Lc - 1];
    Tensor a = at::empty_like(top);
    seed_<scalar_t>(a.data_ptr<scalar_t>(), coef.data_ptr<scalar_t>(), cw[Lc - 1].data_ptr<scalar_t>(),
                    top.data_ptr<scalar_t>(), n, top.size(1), cs[Lc - 2]);
    for (size_t l = Lc - 2; l >= 1; --l) {
      Tensor t = at::mm(a, cw[l]);
      mask_<scalar_t>(t.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), C[l].data_ptr<scalar_t>(), n, t.size(1),
                      cs[l - 1]);
      a = t;
    }
    Tensor d = at::mm(a, cw[0]);  // N x d: the gradient at the generator's output
    // down the generator
    for (size_t l = Lg; l-- > 0;) {
      wg[l] = at::mm(d.t(), G[l]);
      bg[l] = has(gb[l]) ? d.sum(0) : at::empty({0}, z.options());
      if (l == 0) break;
      Tensor t = at::mm(d, gw[l]);
      mask_<scalar_t>(t.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), G[l].data_ptr<scalar_t>(), n, t.size(1),
                      gs[l - 1]);
      d = t;
    }
  });
  std::vector<Tensor> out{loss};
  out.insert(out.end(), wg.begin(), wg.end());
  out.insert(out.end(), bg.begin(), bg.end());
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("wgan_generator", &wgan_generator, "WGAN generator loss and generator gradients, MLP generator and critic");
  m.def("mlp_forward", &mlp_forward, "MLP forward without a graph");
  m.def("wgan_gp_critic", &wgan_gp_critic, "WGAN-GP critic loss and gradients of an MLP critic");
}
