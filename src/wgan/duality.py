r"""The Kantorovich-Rubinstein duality made measurable: a critic trained alone on two fixed sample sets.

.. math::
    W_1(P, Q) = \sup_{\|f\|_L \le 1} \; E_{x \sim P}[f(x)] - E_{y \sim Q}[f(y)]

No generator: the critic (an MLP) is trained on two fixed sets of samples with the project's own
critic step (:func:`wgan.training.steps.critic_step`, Wasserstein objective) and one Lipschitz
method, then its *dual estimate* :math:`E_P[f] - E_Q[f]` on the whole sets is set against the
*exact* W1 of the same two sets (the primal: optimal transport, :func:`wgan.distances.wasserstein_exact`).

What to expect from each method:

* ``gp`` (gradient penalty): close to the exact W1. The penalty is soft: for a critic
  :math:`s f^*` the objective :math:`s W_1 - \lambda (s - 1)^2` peaks at :math:`s = 1 + W_1 / (2\lambda)`,
  so the estimate overshoots by the fraction :math:`W_1 / (2 \lambda)`: 11.6% for the paper's
  :math:`\lambda = 10` on the ``gaussians`` demo (W1 = 2.32; measured +11%). The duality check therefore
  defaults to :math:`\lambda = 30` (predicted +3.9%, measured +2.6%); a much larger weight makes the
  problem stiff and a few hundred steps too few.
* ``clip`` (weight clipping): a K-Lipschitz critic for an unknown, small K; the raw estimate is
  :math:`\approx K W_1`. Dividing by the empirical Lipschitz constant :math:`\hat L` puts it back on
  the W1 scale (an approximation: :math:`\hat L` is itself a lower bound on the true constant).
* ``sn`` (spectral normalisation): every layer 1-Lipschitz, the network at most 1-Lipschitz and
  usually less: the raw estimate is a lower bound on W1.

References:
    Villani, "Optimal Transport: Old and New", 2009, theorem 5.10 (duality);
    Arjovsky et al. 2017, eq. 3; Gulrajani et al. 2017, eq. 3 and proposition 1; Miyato et al. 2018.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from wgan.config import TrainConfig
from wgan.diagnostics.gradnorm import grad_norm_stats
from wgan.diagnostics.lipschitz_probe import empirical_lipschitz
from wgan.distances import wasserstein_exact
from wgan.lipschitz import LIPSCHITZ, LipschitzMethod
from wgan.lipschitz.gradient_penalty import interpolate
from wgan.nets.mlp import MLPCritic
from wgan.objectives import get_objective
from wgan.training.distributed import Comm
from wgan.training.steps import critic_step


def duality_methods() -> tuple[str, ...]:
    """The Lipschitz methods the duality check offers: every registered one that bounds the critic's
    constant (it has a :attr:`~wgan.lipschitz.LipschitzMethod.duality_reading`): gp, clip, sn."""
    return tuple(name for name, cls in LIPSCHITZ.items() if cls.duality_reading is not None)


#: Built-in sample pairs for ``--demo``.
DEMOS = ("gaussians", "ring")


@dataclass
class DualityResult:
    """What a duality check measured.

    Attributes:
        method: ``gp``, ``clip`` or ``sn``.
        estimate: the dual estimate :math:`E_P[f] - E_Q[f]` over every sample of both sets.
        exact_w1: the exact W1 between the two sample sets (optimal transport, Euclidean cost).
        rel_error: ``(estimate - exact_w1) / exact_w1``.
        lipschitz: the empirical Lipschitz constant :math:`\\hat L` of the trained critic (a lower
            bound on the true constant).
        normalised: ``estimate / lipschitz``, the estimate of the critic rescaled to slope 1.
        grad_norm_mean: mean gradient norm of the critic at interpolates of P and Q.
        steps, seconds: training length and wall time (exact W1 not included).
        curve: ``(step, estimate on a fixed batch pair)`` during training.
    """

    method: str
    estimate: float
    exact_w1: float
    rel_error: float
    lipschitz: float
    normalised: float
    grad_norm_mean: float
    steps: int
    seconds: float
    n_p: int
    n_q: int
    dim: int
    settings: dict[str, Any] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def demo_samples(name: str, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two built-in 2-D sample sets of ``n`` rows each.

    * ``gaussians``: :math:`N((0, 0), I)` and :math:`N((2, 1), 0.5^2 I)`: a shift and a change of scale,
      so the optimal critic is not linear;
    * ``ring``: the 8-Gaussian ring (radius 2, std 0.02) and :math:`N(0, 0.5^2 I)` at its centre.
    """
    rng = np.random.default_rng(seed)
    if name == "gaussians":
        return rng.normal(size=(n, 2)), np.array([2.0, 1.0]) + 0.5 * rng.normal(size=(n, 2))
    if name == "ring":
        angles = rng.integers(0, 8, n) * (2 * math.pi / 8)
        ring = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1) + 0.02 * rng.normal(size=(n, 2))
        return ring, 0.5 * rng.normal(size=(n, 2))
    raise ValueError(f"demo must be one of {', '.join(DEMOS)}, got {name!r}")


def _method(method: str, config: TrainConfig) -> LipschitzMethod:
    """The method ``method``, built by its own :meth:`~wgan.lipschitz.LipschitzMethod.from_config`."""
    if method not in duality_methods():
        raise ValueError(f"method must be one of {', '.join(duality_methods())}, got {method!r}")
    return LIPSCHITZ[method].from_config(config)


def duality_check(x_p, x_q, method: str = "gp", steps: int = 600, batch_size: int = 256, width: int = 64,
                  depth: int = 2, lr: float = 1e-3, gp_weight: float = 30.0, clip_value: float = 0.01,
                  seed: int = 0, threads: int | None = 1, curve_every: int = 50) -> DualityResult:
    r"""Train a critic alone to maximise :math:`E_P[f] - E_Q[f]` under ``method``; compare with the exact W1.

    .. math::
        \hat W = \frac{1}{n} \sum_i f(x_i) - \frac{1}{m} \sum_j f(y_j)
        \quad \text{vs} \quad
        W_1 = \min_{\gamma \in \Pi} \sum_{ij} \gamma_{ij} \|x_i - y_j\|_2

    Each step draws a batch from each set (with replacement) and runs the trainer's own
    :func:`~wgan.training.steps.critic_step` with the Wasserstein objective; the "generator" is the
    identity applied to the batch from Q. Adam (``lr``, betas (0.5, 0.9)) for every method, so the
    methods differ only in their constraint.

    Args:
        x_p, x_q: (n, d) and (m, d) samples (1-D arrays are one column); at most 6,000 rows each
            (the exact W1's cost matrix is n x m).
        method: ``gp``, ``clip`` or ``sn``.
        steps: critic updates.
        batch_size: samples drawn from each set per step.
        width, depth: the critic MLP (ReLU).
        lr: Adam learning rate.
        gp_weight: :math:`\lambda` for ``gp`` (30: see the module docstring for why not 10).
        clip_value: :math:`c` for ``clip``.
        seed: initial weights and batch draws.
        threads: torch CPU threads for the run (``None`` leaves the setting alone).
        curve_every: record the estimate on a fixed batch pair every so many steps.

    Returns:
        A :class:`DualityResult`.

    Example:
        >>> p, q = demo_samples("gaussians", 500)
        >>> r = duality_check(p, q, "gp")
        >>> abs(r.rel_error) < 0.1
        True

    References:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, eq. 3.
    """
    x_p = np.asarray(x_p, dtype=np.float64)
    x_q = np.asarray(x_q, dtype=np.float64)
    x_p = x_p[:, None] if x_p.ndim == 1 else x_p
    x_q = x_q[:, None] if x_q.ndim == 1 else x_q
    if x_p.ndim != 2 or x_q.ndim != 2 or x_p.shape[1] != x_q.shape[1]:
        raise ValueError(f"P and Q must be (n, d) and (m, d) with the same d; got {x_p.shape} and {x_q.shape}")
    for name, v in (("steps", steps), ("batch_size", batch_size), ("width", width), ("depth", depth)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    # the duality check's coefficients in a config (its other fields keep their defaults), read by the method
    coefficients = TrainConfig(gp_weight=gp_weight, clip_value=clip_value)
    lip = _method(method, coefficients)
    exact = wasserstein_exact(x_p, x_q)  # refuses > 6000 rows per side with a message

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        p = torch.as_tensor(x_p, dtype=torch.float32)
        q = torch.as_tensor(x_q, dtype=torch.float32)
        critic = lip.wrap(MLPCritic(p.shape[1], width, depth, "relu"))
        opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
        objective = get_objective("wasserstein")
        identity = torch.nn.Identity()  # the "generator": x_fake = the batch drawn from Q
        comm = Comm()
        rng = torch.Generator().manual_seed(seed * 1_000_003 + 29)
        fixed_p = p[torch.randint(len(p), (batch_size,), generator=rng)]
        fixed_q = q[torch.randint(len(q), (batch_size,), generator=rng)]
        curve: list[tuple[int, float]] = []
        t0 = time.perf_counter()
        for step in range(1, steps + 1):
            xb = p[torch.randint(len(p), (batch_size,), generator=rng)]
            yb = q[torch.randint(len(q), (batch_size,), generator=rng)]
            critic_step(critic, identity, opt, objective, lip, comm, xb, yb, rng)
            if step % curve_every == 0 or step == steps:
                with torch.no_grad():
                    curve.append((step, float(critic(fixed_p).mean() - critic(fixed_q).mean())))
        seconds = time.perf_counter() - t0

        critic.eval()  # spectral norm: use the current estimate of sigma, no further power iteration
        with torch.no_grad():
            estimate = float(critic(p).double().mean() - critic(q).double().mean())
        # Lipschitz probes on paired subsets of equal size (the probes pair rows)
        k = min(len(p), len(q), 2048)
        probe_rng = torch.Generator().manual_seed(seed + 101)
        xp = p[torch.randperm(len(p), generator=probe_rng)[:k]]
        xq = q[torch.randperm(len(q), generator=probe_rng)[:k]]
        x_hat = interpolate(xp, xq, probe_rng)
        gstats = grad_norm_stats(critic, x_hat)
        L = float(empirical_lipschitz(critic, xp, xq, x_hat=x_hat, rng=probe_rng))
    finally:
        if threads:
            torch.set_num_threads(old_threads)
    normalised = estimate / L if L > 0 else float("nan")
    settings = {"batch_size": batch_size, "width": width, "depth": depth, "lr": lr, "seed": seed,
                "optimizer": "adam (0.5, 0.9)"}
    settings.update({name: getattr(coefficients, name) for name in LIPSCHITZ[method].coefficients})
    return DualityResult(method=method, estimate=estimate, exact_w1=exact,
                         rel_error=(estimate - exact) / exact if exact > 0 else float("nan"),
                         lipschitz=L, normalised=normalised, grad_norm_mean=float(gstats["mean"]),
                         steps=steps, seconds=seconds, n_p=len(x_p), n_q=len(x_q), dim=x_p.shape[1],
                         settings=settings, curve=curve)


def format_result(r: DualityResult) -> str:
    """A few human lines: the dual estimate against the exact W1, and how to read them."""
    lines = [
        f"duality check: critic alone, method {r.method}, {r.steps} steps in {r.seconds:.1f} s "
        f"({r.n_p} vs {r.n_q} samples, {r.dim}-D)",
        f"  exact W1 (optimal transport)       {r.exact_w1:.4f}",
        f"  dual estimate E_P[f] - E_Q[f]      {r.estimate:.4f}   ({100 * r.rel_error:+.1f}% of exact)",
        f"  empirical Lipschitz constant of f  {r.lipschitz:.4f}",
        f"  estimate / Lipschitz constant      {r.normalised:.4f}   "
        f"({100 * (r.normalised - r.exact_w1) / r.exact_w1:+.1f}% of exact)",
        f"  gradient norm at interpolates      {r.grad_norm_mean:.4f} (mean)",
    ]
    reading = LIPSCHITZ.get(r.method, LipschitzMethod).duality_reading
    if reading:
        lines.append(f"  reading: {reading}")
    return "\n".join(lines)
