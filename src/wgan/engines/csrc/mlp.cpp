// The WGAN-GP steps of a plain MLP (Linear, then ReLU/LeakyReLU and Linear in turn, one output),
// written out for the CPU: the same algorithm as wgan/engines/fastgrad.py's penalised_loss_backward
// (stacked real, fake and interpolated rows; one pass down the adjoints for the score gradients and
// the input-gradient chain together; one pass up the chain; one weight gradient per layer), with the
// element-wise work fused into single passes over memory and no interpreter between the operations.
// Matrix products are ATen's (MKL / oneDNN). Built on first use by wgan/engines/native.py.
//
// The closed forms here are copies of Python definitions, which own them (tests/test_native.py checks
// that both give the same values and gradients):
//   the critic's Wasserstein loss and its score gradients: wgan/objectives.py, wasserstein_critic_loss_grads
//   the generator's loss -E[f(G(z))]:                      wgan/objectives.py, wasserstein_generator_loss
//   the penalty on the input gradient and its gradient:    wgan/lipschitz/gradient_penalty.py, NormPenalty
//   the interpolates lerp(x_fake, x_real, alpha):          wgan/lipschitz/gradient_penalty.py, interpolate
//
// Layer l maps H[l] (rows x n_l) to H[l+1] = act_l(H[l] W_l^T + b_l); the last layer has no
// activation. An activation's slope is 1 where its result is > 0, else s_l (0 for ReLU); the result
// is > 0 exactly where the input is, so the results alone fix the pieces.
//
// Threads: every row's work is independent of the other rows' up to the weight gradients (a row's
// penalty gradient needs only its own norm), so a batch is cut into one block of rows per thread; the
// blocks run side by side, each with single-threaded products and its own share of the working set
// (which then stays in that core's cache), and only their weight gradients and sums are added up. Two
// threads on a toy critic step: one parallel region, against the dozens a product-level split needs.

#include <torch/extension.h>

#include <algorithm>
#include <exception>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using at::Tensor;

// A layer without a bias passes an empty tensor.
bool has(const Tensor& b) { return b.defined() && b.numel() > 0; }

// ------------------------------------------------------------------------------ element-wise passes
// Serial: the parallelism is over blocks of rows.

// h = act(h + b), in place; b may be undefined.
template <typename T>
void bias_act_(Tensor& h, const Tensor& b, double slope) {
  const int64_t rows = h.size(0), cols = h.size(1);
  T* hp = h.data_ptr<T>();
  const T* bp = has(b) ? b.data_ptr<T>() : nullptr;
  const T s = static_cast<T>(slope);
  for (int64_t r = 0; r < rows; ++r) {
    T* row = hp + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      T v = row[c] + (bp ? bp[c] : T(0));
      row[c] = v > T(0) ? v : v * s;
    }
  }
}

// out = d * slope(t) where t is an activation's result; out may alias d (not t, unless out is t).
template <typename T>
void mask_(T* out, const T* d, const T* t, int64_t rows, int64_t cols, double slope) {
  const T s = static_cast<T>(slope);
  for (int64_t i = 0; i < rows * cols; ++i) {
    out[i] = t[i] > T(0) ? d[i] : (s == T(0) ? T(0) : d[i] * s);
  }
}

// a[i, j] = coef[i] * w[j] * slope(t[i, j]): the top layer's adjoint (one output) and the mask below it.
template <typename T>
void seed_(T* a, const T* coef, const T* w, const T* t, int64_t rows, int64_t cols, double slope) {
  const T s = static_cast<T>(slope);
  for (int64_t r = 0; r < rows; ++r) {
    const T c0 = coef[r];
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      const T v = c0 * w[c];
      a[i] = t[i] > T(0) ? v : (s == T(0) ? T(0) : v * s);
    }
  }
}

constexpr int64_t kSmallK = 8;  // below this many inputs a layer is a fused loop: BLAS is slow at tiny K

// out = act(x W^T + b) for a layer with few inputs, in one pass (no product call).
// With mask_by, out = (x W^T) * slope(mask_by) instead (mask_by may alias out): the chain up a layer.
template <typename T>
void small_k_linear_act(T* out, const T* x, const T* w, const T* b, int64_t rows, int64_t k, int64_t cols,
                        double slope, const T* mask_by = nullptr) {
  const T s = static_cast<T>(slope);
  std::vector<T> acc(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * k;
    T* o = out + r * cols;
    for (int64_t c = 0; c < cols; ++c) acc[c] = b ? b[c] : T(0);
    for (int64_t j = 0; j < k; ++j) {
      const T xv = xr[j];
      for (int64_t c = 0; c < cols; ++c) acc[c] += xv * w[c * k + j];
    }
    if (mask_by) {
      const T* t = mask_by + r * cols;
      for (int64_t c = 0; c < cols; ++c) o[c] = t[c] > T(0) ? acc[c] : (s == T(0) ? T(0) : acc[c] * s);
    } else {
      for (int64_t c = 0; c < cols; ++c) o[c] = acc[c] > T(0) ? acc[c] : acc[c] * s;
    }
  }
}

// ------------------------------------------------------------------------------ networks
// An MLP's parameters as given (detached: nothing here records a graph) and its activations' slopes.
struct Mlp {
  std::vector<Tensor> w, b;
  std::vector<double> s;

  Mlp(std::vector<Tensor> weights, std::vector<Tensor> biases, std::vector<double> slopes, const char* what)
      : w(std::move(weights)), b(std::move(biases)), s(std::move(slopes)) {
    TORCH_CHECK(w.size() >= 2 && b.size() == w.size() && s.size() + 1 == w.size(), "wgan native: the ", what,
                " needs L >= 2 weights, L biases and L - 1 slopes");
    for (auto& t : w) {
      TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dim() == 2, "wgan native: CPU contiguous weights");
      t = t.detach();
    }
    for (auto& t : b) t = t.detach();
  }
  size_t layers() const { return w.size(); }
};

Mlp critic_mlp(std::vector<Tensor> w, std::vector<Tensor> b, std::vector<double> s) {
  Mlp net(std::move(w), std::move(b), std::move(s), "critic");
  TORCH_CHECK(net.w.back().size(0) == 1, "wgan native: the critic's last layer must have one output");
  return net;
}

// Forward of all but the last layer over x; returns H[0..L-1] (H[0] = x).
std::vector<Tensor> hidden_forward(const Tensor& x, const Mlp& net) {
  std::vector<Tensor> H{x};
  for (size_t l = 0; l + 1 < net.layers(); ++l) {
    const Tensor& w = net.w[l];
    const Tensor& in = H.back();
    Tensor h;
    if (w.size(1) < kSmallK) {
      h = at::empty({in.size(0), w.size(0)}, in.options());
      AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "small_k_linear_act", [&] {
        small_k_linear_act<scalar_t>(h.data_ptr<scalar_t>(), in.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                     has(net.b[l]) ? net.b[l].data_ptr<scalar_t>() : nullptr, in.size(0),
                                     w.size(1), w.size(0), net.s[l]);
      });
    } else {
      h = at::mm(in, w.t());
      AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "bias_act_", [&] { bias_act_<scalar_t>(h, net.b[l], net.s[l]); });
    }
    H.push_back(h);
  }
  return H;
}

// The last layer (no activation) on the top hidden layer's rows.
Tensor output_layer(const Tensor& h, const Mlp& net) {
  const Tensor &w = net.w.back(), &b = net.b.back();
  return has(b) ? at::addmm(b, h, w.t()) : at::mm(h, w.t());
}

// A critic's scores (one output): (rows,).
Tensor scores_of(const Tensor& h, const Mlp& net) {
  Tensor s = at::mv(h, net.w.back()[0]);
  return has(net.b.back()) ? s.add_(net.b.back()) : s;
}

// ------------------------------------------------------------------------------ row blocks
constexpr int64_t kBlockRows = 64;  // a thread's block has at least this many rows

int64_t block_count(int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / kBlockRows));
}

// Block k of `blocks` of t's rows (the first total * k / blocks rows belong to the earlier blocks).
Tensor block_rows(const Tensor& t, int64_t k, int64_t blocks) {
  const int64_t n = t.size(0), begin = n * k / blocks;
  return t.narrow(0, begin, n * (k + 1) / blocks - begin);
}

// fn(k) for every block k, one thread each, the products inside single-threaded; rethrows the first error.
template <typename F>
void for_each_block(int64_t blocks, const F& fn) {
  if (blocks == 1) {
    at::NoGradGuard no_grad;
    fn(0);
    return;
  }
  std::exception_ptr error;
#ifdef _OPENMP
  const int levels = omp_get_max_active_levels();
  omp_set_max_active_levels(1);  // a product called inside a block gets no threads of its own
#pragma omp parallel for num_threads(blocks) schedule(static, 1)
#endif
  for (int64_t k = 0; k < blocks; ++k) {
    try {
      at::NoGradGuard no_grad;
      fn(k);
    } catch (...) {
#ifdef _OPENMP
#pragma omp critical(wgan_native_error)
#endif
      if (!error) error = std::current_exception();
    }
  }
#ifdef _OPENMP
  omp_set_max_active_levels(levels);
#endif
  if (error) std::rethrow_exception(error);
}

// The sum over blocks of each gradient (parts[k][i]: block k's gradient i; empty ones stay empty).
std::vector<Tensor> summed(std::vector<std::vector<Tensor>>& parts) {
  std::vector<Tensor> out = parts[0];
  for (size_t k = 1; k < parts.size(); ++k) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].numel()) out[i].add_(parts[k][i]);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ the critic step
// One block's part of the critic step: its scores (real then fake rows), its norms, the sum of its
// squared excesses and its share of every weight gradient, then every bias gradient.
struct CriticBlock {
  Tensor scores, norms, excess_sq;
  std::vector<Tensor> grads;
};

// x stacks the block's n real, f - n fake and the rest interpolated rows; c_real / c_fake are
// d loss / d score of one real / fake row (-1/N, 1/N_fake over the whole batch: wgan/objectives.py,
// wasserstein_critic_loss_grads), pen = 2 gain / M.
CriticBlock critic_block(const Tensor& x, int64_t n, int64_t f, const Mlp& net, double c_real, double c_fake,
                         double pen, bool one_sided, double eps) {
  const size_t L = net.layers();
  const int64_t r = x.size(0), m = r - f;
  auto H = hidden_forward(x, net);
  CriticBlock out;
  out.scores = scores_of(H[L - 1].narrow(0, 0, f), net);
  // the seed of the down pass: d loss / d score on the real and fake rows, 1 on the interpolates'
  Tensor coef = at::empty({r}, x.options());
  coef.narrow(0, 0, n).fill_(c_real);
  coef.narrow(0, n, f - n).fill_(c_fake);
  coef.narrow(0, f, m).fill_(1.0);

  // down: A[l] is the stacked value entering layer l's adjoint (r x n_{l+1}), for l < L - 1
  std::vector<Tensor> A(L - 1);
  Tensor g;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "wgan_gp_down", [&] {
    const Tensor& top = H[L - 1];
    A[L - 2] = at::empty_like(top);
    seed_<scalar_t>(A[L - 2].data_ptr<scalar_t>(), coef.data_ptr<scalar_t>(), net.w[L - 1].data_ptr<scalar_t>(),
                    top.data_ptr<scalar_t>(), r, top.size(1), net.s[L - 2]);
    for (size_t l = L - 2; l >= 1; --l) {
      Tensor t = at::mm(A[l], net.w[l]);  // r x n_l
      mask_<scalar_t>(t.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), H[l].data_ptr<scalar_t>(), r, t.size(1),
                      net.s[l - 1]);
      A[l - 1] = t;
    }
    g = at::mm(A[0].narrow(0, f, m), net.w[0]);  // the input gradient at x_hat, m x d
  });

  // the penalty and its gradient with respect to g (wgan/lipschitz/gradient_penalty.py, NormPenalty)
  out.norms = (g.square().sum(1) + eps).sqrt_();
  Tensor excess = out.norms - 1.0;
  if (one_sided) excess.clamp_min_(0.0);
  out.excess_sq = excess.square().sum();
  Tensor d_g = g * (excess * pen / out.norms).unsqueeze(1);

  // up the chain on the interpolates' rows: each layer's input-side gradient replaces those rows of
  // its input (whose other use, the pieces, is done)
  H[0].narrow(0, f, m).copy_(d_g);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "wgan_gp_up", [&] {
    for (size_t l = 0; l + 1 < L; ++l) {
      const Tensor& w = net.w[l];
      Tensor rows = H[l + 1].narrow(0, f, m);
      if (w.size(1) < kSmallK) {
        small_k_linear_act<scalar_t>(rows.data_ptr<scalar_t>(), H[l].narrow(0, f, m).data_ptr<scalar_t>(),
                                     w.data_ptr<scalar_t>(), nullptr, m, w.size(1), w.size(0), net.s[l],
                                     rows.data_ptr<scalar_t>());
      } else {
        Tensor u = at::mm(H[l].narrow(0, f, m), w.t());  // m x n_{l+1}
        mask_<scalar_t>(rows.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(), rows.data_ptr<scalar_t>(), m, u.size(1),
                        net.s[l]);
      }
    }
  });

  for (size_t l = 0; l + 1 < L; ++l) out.grads.push_back(at::mm(A[l].t(), H[l]));
  out.grads.push_back(at::mv(H[L - 1].t(), coef).unsqueeze(0));
  for (size_t l = 0; l + 1 < L; ++l) {
    out.grads.push_back(has(net.b[l]) ? A[l].narrow(0, 0, f).sum(0) : at::empty({0}, x.options()));
  }
  out.grads.push_back(has(net.b[L - 1]) ? coef.narrow(0, 0, f).sum(0, true) : at::empty({0}, x.options()));
  return out;
}

// The critic step over blocks: inputs(k) gives block k's real, fake and interpolated rows.
// Returns (loss, scores (N real, then N_fake), penalty term, norms (M), weight grads..., bias grads...).
template <typename Inputs>
std::vector<Tensor> critic_in_blocks(int64_t N, int64_t NF, int64_t M, const Inputs& inputs, const Mlp& net,
                                     double gain, bool one_sided, double eps) {
  TORCH_CHECK(N > 0 && NF > 0 && M > 0, "wgan native: empty batch");
  const int64_t blocks = std::min({block_count(M), N, NF});
  std::vector<CriticBlock> parts(blocks);
  std::vector<int64_t> n_real(blocks);
  for_each_block(blocks, [&](int64_t k) {
    auto [xr, xf, xh] = inputs(k, blocks);
    n_real[k] = xr.size(0);
    parts[k] = critic_block(at::cat({xr, xf, xh}), xr.size(0), xr.size(0) + xf.size(0), net, -1.0 / N, 1.0 / NF,
                            2.0 * gain / M, one_sided, eps);
  });
  std::vector<Tensor> real, fake, norms, excess_sq;
  std::vector<std::vector<Tensor>> grads;
  for (int64_t k = 0; k < blocks; ++k) {
    CriticBlock& p = parts[k];
    real.push_back(p.scores.narrow(0, 0, n_real[k]));
    fake.push_back(p.scores.narrow(0, n_real[k], p.scores.size(0) - n_real[k]));
    norms.push_back(p.norms);
    excess_sq.push_back(p.excess_sq);
    grads.push_back(std::move(p.grads));
  }
  Tensor s_real = at::cat(real), s_fake = at::cat(fake);
  std::vector<Tensor> out{s_fake.mean() - s_real.mean(), at::cat({s_real, s_fake}),
                          at::stack(excess_sq).sum() * (gain / M), at::cat(norms)};
  for (auto& g : summed(grads)) out.push_back(g);
  return out;
}

// wgan_gp_critic_step's work on prepared networks.
std::vector<Tensor> critic_step_from_noise(const Tensor& x_real, Tensor z, const Tensor& alpha, const Mlp& gen,
                                           const Mlp& net, double gain, bool one_sided, double eps) {
  const int64_t N = x_real.size(0);
  TORCH_CHECK(z.size(0) == N && alpha.size(0) == N, "wgan native: x_real, z and alpha need the same rows");
  z = z.contiguous();
  auto inputs = [&](int64_t k, int64_t blocks) {
    Tensor xr = block_rows(x_real, k, blocks);
    Tensor xf = output_layer(hidden_forward(block_rows(z, k, blocks), gen).back(), gen);
    Tensor xh = at::lerp(xf, xr, block_rows(alpha, k, blocks));
    return std::make_tuple(xr, xf, xh);
  };
  return critic_in_blocks(N, N, N, inputs, net, gain, one_sided, eps);
}

// The generator's loss -E[f(G(z))] and its gradients over blocks: (loss, weight grads..., bias grads...).
std::vector<Tensor> generator_in_blocks(Tensor z, const Mlp& gen, const Mlp& net) {
  const size_t Lg = gen.layers(), Lc = net.layers();
  const int64_t N = z.size(0);
  TORCH_CHECK(N > 0, "wgan native: empty batch");
  z = z.contiguous();
  const int64_t blocks = block_count(N);
  std::vector<Tensor> score_sums(blocks);
  std::vector<std::vector<Tensor>> grads(blocks);
  for_each_block(blocks, [&](int64_t k) {
    Tensor zk = block_rows(z, k, blocks);
    const int64_t n = zk.size(0);
    auto G = hidden_forward(zk, gen);
    auto C = hidden_forward(output_layer(G[Lg - 1], gen), net);
    score_sums[k] = scores_of(C[Lc - 1], net).sum();
    Tensor coef = at::full({n}, -1.0 / N, z.options());
    std::vector<Tensor> wg(Lg), bg(Lg);
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "wgan_generator", [&] {
      // down the critic to its input: d loss / d x
      const Tensor& top = C[Lc - 1];
      Tensor a = at::empty_like(top);
      seed_<scalar_t>(a.data_ptr<scalar_t>(), coef.data_ptr<scalar_t>(), net.w[Lc - 1].data_ptr<scalar_t>(),
                      top.data_ptr<scalar_t>(), n, top.size(1), net.s[Lc - 2]);
      for (size_t l = Lc - 2; l >= 1; --l) {
        Tensor t = at::mm(a, net.w[l]);
        mask_<scalar_t>(t.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), C[l].data_ptr<scalar_t>(), n, t.size(1),
                        net.s[l - 1]);
        a = t;
      }
      Tensor d = at::mm(a, net.w[0]);  // n x d: the gradient at the generator's output
      // down the generator
      for (size_t l = Lg; l-- > 0;) {
        wg[l] = at::mm(d.t(), G[l]);
        bg[l] = has(gen.b[l]) ? d.sum(0) : at::empty({0}, z.options());
        if (l == 0) break;
        Tensor t = at::mm(d, gen.w[l]);
        mask_<scalar_t>(t.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), G[l].data_ptr<scalar_t>(), n, t.size(1),
                        gen.s[l - 1]);
        d = t;
      }
    });
    grads[k] = wg;
    grads[k].insert(grads[k].end(), bg.begin(), bg.end());
  });
  std::vector<Tensor> out{at::stack(score_sums).sum().div_(-N)};
  for (auto& g : summed(grads)) out.push_back(g);
  return out;
}

// torch.optim.Adam(fused=True).step() for one network: the same kernel (wgan/engines/optim.py's
// step). state holds the exp_avg, exp_avg_sq and step tensors of every parameter, in the order of the
// network's gradients (weights, then the biases there are); hyper is (lr, beta1, beta2, weight_decay, eps).
struct Adam {
  std::vector<Tensor> params, exp_avg, exp_avg_sq, steps;
  std::vector<double> hyper;

  Adam(const Mlp& net, const std::vector<Tensor>& state, std::vector<double> h) : hyper(std::move(h)) {
    for (const auto* group : {&net.w, &net.b}) {
      for (const auto& p : *group) {
        if (p.numel()) params.push_back(p);
      }
    }
    const size_t n = params.size();
    TORCH_CHECK(state.size() == 3 * n && hyper.size() == 5, "wgan native: Adam needs 3 state tensors a parameter");
    exp_avg.assign(state.begin(), state.begin() + n);
    exp_avg_sq.assign(state.begin() + n, state.begin() + 2 * n);
    steps.assign(state.begin() + 2 * n, state.end());
  }

  // grads: the network's weight then bias gradients (empty where a layer has no bias)
  void step(const std::vector<Tensor>& grads) {
    std::vector<Tensor> present;
    for (const auto& g : grads) {
      if (g.numel()) present.push_back(g);
    }
    at::_foreach_add_(steps, 1);
    at::_fused_adam_(params, present, exp_avg, exp_avg_sq, {}, steps, hyper[0], hyper[1], hyper[2], hyper[3],
                     hyper[4], false, false);
  }
};

}  // namespace

// The whole MLP forward (every layer, the last without activation), no graph: (N, d) -> (N, out).
Tensor mlp_forward(Tensor x, std::vector<Tensor> weights, std::vector<Tensor> biases, std::vector<double> slopes) {
  const Mlp net(std::move(weights), std::move(biases), std::move(slopes), "MLP");
  x = x.contiguous();
  const int64_t blocks = block_count(x.size(0));
  Tensor out = at::empty({x.size(0), net.w.back().size(0)}, x.options());
  for_each_block(blocks, [&](int64_t k) {
    Tensor xk = block_rows(x, k, blocks);
    block_rows(out, k, blocks).copy_(output_layer(hidden_forward(xk, net).back(), net));
  });
  return out;
}

// L = E[f(fake)] - E[f(real)] + gain * E[(|grad f(x_hat)| - 1)^2] (one-sided: max(0, .)^2) and the
// gradients of every weight and bias. Returns (loss, scores (N_real + N_fake), penalty term, norms
// (M), weight grads..., bias grads... (empty where a layer has no bias)).
std::vector<Tensor> wgan_gp_critic(Tensor x_real, Tensor x_fake, Tensor x_hat, std::vector<Tensor> weights,
                                   std::vector<Tensor> biases, std::vector<double> slopes, double gain,
                                   bool one_sided, double eps) {
  const Mlp net = critic_mlp(std::move(weights), std::move(biases), std::move(slopes));
  auto inputs = [&](int64_t k, int64_t blocks) {
    return std::make_tuple(block_rows(x_real, k, blocks), block_rows(x_fake, k, blocks), block_rows(x_hat, k, blocks));
  };
  return critic_in_blocks(x_real.size(0), x_fake.size(0), x_hat.size(0), inputs, net, gain, one_sided, eps);
}

// The whole critic step from the generator's noise: x_fake = G(z) (no graph), x_hat = lerp(x_fake,
// x_real, alpha) (torch.lerp: wgan.lipschitz.gradient_penalty.interpolate), then wgan_gp_critic; each
// block makes its own fake and interpolated rows. Returns what wgan_gp_critic returns.
std::vector<Tensor> wgan_gp_critic_step(Tensor x_real, Tensor z, Tensor alpha, std::vector<Tensor> gw,
                                        std::vector<Tensor> gb, std::vector<double> gs, std::vector<Tensor> cw,
                                        std::vector<Tensor> cb, std::vector<double> cs, double gain, bool one_sided,
                                        double eps) {
  const Mlp gen(std::move(gw), std::move(gb), std::move(gs), "generator");
  const Mlp net = critic_mlp(std::move(cw), std::move(cb), std::move(cs));
  return critic_step_from_noise(x_real, std::move(z), alpha, gen, net, gain, one_sided, eps);
}

// The generator's Wasserstein loss -E[f(G(z))] through an MLP generator (last layer without
// activation) and an MLP critic, and the gradients of the generator's weights and biases (the
// critic's are not computed). Returns (loss, weight grads..., bias grads... (empty where none)).
std::vector<Tensor> wgan_generator(Tensor z, std::vector<Tensor> gw, std::vector<Tensor> gb, std::vector<double> gs,
                                   std::vector<Tensor> cw, std::vector<Tensor> cb, std::vector<double> cs) {
  const Mlp gen(std::move(gw), std::move(gb), std::move(gs), "generator");
  return generator_in_blocks(std::move(z), gen, critic_mlp(std::move(cw), std::move(cb), std::move(cs)));
}

// A whole generator step of WGAN-GP training: for each k, the critic step from (x_reals[k], zs[k],
// alphas[k]) (wgan_gp_critic_step) and its Adam update, then the generator step on z_gen
// (wgan_generator) and its Adam update, the parameters updated in place. Returns (critic statistics
// (K x 5: loss, gap E[f(real)] - E[f(fake)], penalty term, mean norm, loss + term), generator loss,
// the last critic gradients..., the generator gradients...), the gradients as wgan_gp_critic's.
std::vector<Tensor> wgan_gp_round(std::vector<Tensor> x_reals, std::vector<Tensor> zs, std::vector<Tensor> alphas,
                                  Tensor z_gen, std::vector<Tensor> gw, std::vector<Tensor> gb, std::vector<double> gs,
                                  std::vector<Tensor> cw, std::vector<Tensor> cb, std::vector<double> cs, double gain,
                                  bool one_sided, double eps, std::vector<Tensor> c_state, std::vector<double> c_hyper,
                                  std::vector<Tensor> g_state, std::vector<double> g_hyper) {
  const Mlp gen(std::move(gw), std::move(gb), std::move(gs), "generator");
  const Mlp net = critic_mlp(std::move(cw), std::move(cb), std::move(cs));
  Adam c_adam(net, c_state, std::move(c_hyper)), g_adam(gen, g_state, std::move(g_hyper));
  const size_t K = x_reals.size();
  TORCH_CHECK(K > 0 && zs.size() == K && alphas.size() == K, "wgan native: one x_real, z and alpha a critic step");
  std::vector<Tensor> stats, critic_grads;
  for (size_t k = 0; k < K; ++k) {
    auto out = critic_step_from_noise(x_reals[k], zs[k], alphas[k], gen, net, gain, one_sided, eps);
    critic_grads.assign(out.begin() + 4, out.end());
    c_adam.step(critic_grads);
    const int64_t n = x_reals[k].size(0);
    Tensor gap = out[1].narrow(0, 0, n).mean() - out[1].narrow(0, n, n).mean();
    stats.push_back(at::stack({out[0], gap, out[2], out[3].mean(), out[0] + out[2]}));
  }
  auto g_out = generator_in_blocks(z_gen, gen, net);
  std::vector<Tensor> gen_grads(g_out.begin() + 1, g_out.end());
  g_adam.step(gen_grads);
  std::vector<Tensor> result{at::stack(stats), g_out[0]};
  result.insert(result.end(), critic_grads.begin(), critic_grads.end());
  result.insert(result.end(), gen_grads.begin(), gen_grads.end());
  return result;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mlp_forward", &mlp_forward, "MLP forward without a graph");
  m.def("wgan_gp_critic", &wgan_gp_critic, "WGAN-GP critic loss and gradients of an MLP critic");
  m.def("wgan_gp_critic_step", &wgan_gp_critic_step,
        "WGAN-GP critic step of an MLP critic from an MLP generator's noise and the interpolation weights");
  m.def("wgan_generator", &wgan_generator, "WGAN generator loss and generator gradients, MLP generator and critic");
  m.def("wgan_gp_round", &wgan_gp_round, "n_critic WGAN-GP critic steps and a generator step with their Adam updates");
}
