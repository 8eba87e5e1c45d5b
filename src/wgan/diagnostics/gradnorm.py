r"""Gradient norms of the critic at interpolates, and the source texts' verdict on them.

For a 1-Lipschitz critic that is optimal for the Kantorovich-Rubinstein dual, the gradient has
norm 1 almost everywhere on the segments between coupled real and generated points (Gulrajani et
al. 2017, proposition 1). So the norms at

.. math::
    \hat x = \alpha x_{real} + (1 - \alpha) x_{fake}, \qquad \alpha \sim U[0, 1] \text{ per sample},

    n_i = \|\nabla_{\hat x} f(\hat x_i)\|_2 \quad \text{(over every non-batch axis)}

should gather around 1. The verdict thresholds are the source texts': :math:`|\bar n - 1| < 0.1`
excellent, :math:`< 0.3` acceptable, otherwise poor. Unlike the source code, the norm runs over
every non-batch axis (an image's C, H and W together), not over axis 1 alone.

Histograms use fixed, log-spaced bins (:data:`GRAD_NORM_EDGES`) so that ticks, runs and Lipschitz
methods (clipping gives norms far below 1) can be compared bin for bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wgan.lipschitz.gradient_penalty import gradient_norms, input_gradient

#: Bin edges of the gradient-norm histogram: 100 log-spaced bins from 1e-3 to 1e2. The histogram
#: has two more counts: below the first edge (index 0) and at or above the last (index -1).
GRAD_NORM_EDGES: tuple[float, ...] = tuple(float(10 ** (-3 + 5 * i / 100)) for i in range(101))

EXCELLENT = 0.1  # |mean - 1| below this: excellent (source text 004)
ACCEPTABLE = 0.3  # below this: acceptable; otherwise poor


@dataclass(frozen=True)
class GradNormVerdict:
    """The source texts' reading of a mean gradient norm, and what to change.

    Attributes:
        level: ``"excellent"``, ``"acceptable"``, ``"poor"`` or ``"n/a"`` (no 1-Lipschitz target:
            clipping and spectral norm bound the constant rather than pin the norm to 1, and the
            vanilla GAN has no constraint at all).
        mean: the mean gradient norm judged.
        meaning: what the number says about the critic.
        remedy: what to change (empty when nothing needs changing).
    """

    level: str
    mean: float
    meaning: str
    remedy: str = ""

    def __str__(self) -> str:
        text = f"gradient norm at interpolates {self.mean:.3f} ({self.level}): {self.meaning}"
        return text + (f"; {self.remedy}" if self.remedy else "")


def grad_norm_verdict(mean: float, method: str = "gp") -> GradNormVerdict:
    """Judge the mean gradient norm at interpolates as the source texts do.

    .. math:: |\\bar n - 1| < 0.1 \\Rightarrow \\text{excellent}, \\quad
              |\\bar n - 1| < 0.3 \\Rightarrow \\text{acceptable}, \\quad \\text{else poor}

    Args:
        mean: mean gradient norm of the critic at interpolates.
        method: the Lipschitz method (``gp``, ``clip``, ``sn``, ``none``); only the gradient
            penalty targets norm 1, the others get ``n/a`` with an explanation.

    Returns:
        A :class:`GradNormVerdict`.

    Example:
        >>> grad_norm_verdict(1.05).level
        'excellent'
        >>> grad_norm_verdict(1.6).level
        'poor'
    """
    mean = float(mean)
    if method == "clip":
        return GradNormVerdict("n/a", mean, "weight clipping bounds the Lipschitz constant by an unknown K "
                               "rather than pinning the norm to 1; the critic estimates about K x W1, so read "
                               "the shape of its curve, not its value", "use --variant wgan-gp for a 1-Lipschitz critic")
    if method == "sn":
        return GradNormVerdict("n/a", mean, "spectral norm makes each layer 1-Lipschitz, a bound that is "
                               "usually loose: norms below 1 are expected and the gap is a lower bound")
    if method == "none":
        return GradNormVerdict("n/a", mean, "no Lipschitz constraint (vanilla GAN): the scores are logits "
                               "and their gap is no distance estimate")
    dev = abs(mean - 1.0)
    if dev < EXCELLENT:
        return GradNormVerdict("excellent", mean, "gradient norms close to 1: the critic is close to "
                               "1-Lipschitz where it matters")
    level = "acceptable" if dev < ACCEPTABLE else "poor"
    if mean > 1.0:
        return GradNormVerdict(level, mean, "norms above 1: the critic is steeper than 1-Lipschitz and its gap "
                               "overestimates W1 (by about this factor)",
                               "increase --gp-weight: the penalty is too weak")
    return GradNormVerdict(level, mean, "norms below 1: the critic does not use its Lipschitz budget and its "
                           "gap underestimates W1",
                           "give the critic more capacity or steps (--c-width, --n-critic, --lr-c), or lower "
                           "--gp-weight if the penalty dominates the critic's loss")


def grad_norm_histogram(norms: torch.Tensor) -> torch.Tensor:
    """Counts of ``norms`` in the fixed bins: ``len(GRAD_NORM_EDGES) + 1`` values, on the norms' device.

    Index 0 counts norms below ``GRAD_NORM_EDGES[0]``, index i (1..100) counts
    ``EDGES[i-1] <= n < EDGES[i]``, the last index counts norms at or above ``EDGES[-1]``.
    """
    edges = torch.tensor(GRAD_NORM_EDGES, dtype=norms.dtype, device=norms.device)
    idx = torch.bucketize(norms.detach(), edges, right=True)  # 0 .. len(edges)
    return torch.bincount(idx, minlength=len(edges) + 1)


def grad_norm_stats(critic: nn.Module, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradient-norm statistics of ``critic`` at the points ``x_hat``, as on-device tensors.

    The gradient is taken by autograd (a first-order backward with respect to the input only: no
    parameter gradient is touched), the norm over every non-batch axis.

    Args:
        critic: maps (N, ...) to scores (N,).
        x_hat: points, usually interpolates of a real and a generated batch. Shape (N, ...).

    Returns:
        ``{"norms", "mean", "std", "min", "median", "max", "hist"}``: ``norms`` (N,), the five
        statistics as 0-d tensors, ``hist`` the counts of :func:`grad_norm_histogram`.

    Example:
        >>> f = nn.Linear(3, 1, bias=False); f.weight.data = torch.tensor([[3.0, 0.0, 4.0]])
        >>> s = grad_norm_stats(lambda x: f(x).squeeze(1), torch.randn(8, 3))
        >>> round(float(s["mean"]), 4), round(float(s["std"]), 4)
        (5.0, 0.0)
    """
    grad = input_gradient(critic, x_hat.detach(), create_graph=False, fast=False)
    return grad_norm_summary(gradient_norms(grad.detach()))


def grad_norm_summary(norms: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean, std (population), min, median (interpolated, as ``numpy.median``), max and histogram
    of per-sample norms (N,), as on-device tensors in float64, plus ``norms`` itself."""
    norms = norms.detach().to(torch.float64)
    return {
        "norms": norms,
        "mean": norms.mean(),
        "std": norms.std(unbiased=False) if len(norms) > 1 else torch.zeros((), dtype=norms.dtype,
                                                                             device=norms.device),
        "min": norms.min(),
        "median": torch.quantile(norms, 0.5),
        "max": norms.max(),
        "hist": grad_norm_histogram(norms),
    }
