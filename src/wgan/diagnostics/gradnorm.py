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

from wgan.lipschitz import LIPSCHITZ, LipschitzMethod
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


def grad_norm_verdict(mean: float, method: str | type[LipschitzMethod] | LipschitzMethod = "gp") -> GradNormVerdict:
    """Judge the mean gradient norm at interpolates as the source texts do.

    .. math:: |\\bar n - t| < 0.1 \\Rightarrow \\text{excellent}, \\quad
              |\\bar n - t| < 0.3 \\Rightarrow \\text{acceptable}, \\quad \\text{else poor}

    with :math:`t` the method's :attr:`~wgan.lipschitz.LipschitzMethod.grad_norm_target` (1 for the
    gradient penalty). A method without a target (clipping and spectral norm bound the constant rather
    than pin the norm; the vanilla GAN has no constraint), or a name that is not registered, gets
    ``n/a`` with the method's own reading of the number.

    Args:
        mean: mean gradient norm of the critic at interpolates.
        method: a registered method's name (``wgan.lipschitz.LIPSCHITZ``), its class or an instance.

    Returns:
        A :class:`GradNormVerdict`.

    Example:
        >>> grad_norm_verdict(1.05).level
        'excellent'
        >>> grad_norm_verdict(1.6).level
        'poor'
        >>> grad_norm_verdict(0.01, "clip").level
        'n/a'
    """
    mean = float(mean)
    if isinstance(method, str):
        cls = LIPSCHITZ.get(method, LipschitzMethod)  # an unknown name: no target, generic texts
    else:
        cls = method if isinstance(method, type) else type(method)
    target = cls.grad_norm_target
    if target is None:
        return GradNormVerdict("n/a", mean, cls.grad_norm_reading, cls.grad_norm_remedy)
    dev = abs(mean - target)
    if dev < EXCELLENT:
        return GradNormVerdict("excellent", mean, f"gradient norms close to {target:g}: the critic is close to "
                               f"{target:g}-Lipschitz where it matters")
    level = "acceptable" if dev < ACCEPTABLE else "poor"
    if mean > target:
        return GradNormVerdict(level, mean, f"norms above {target:g}: the critic is steeper than {target:g}-Lipschitz "
                               f"and its gap overestimates W1 (by about this factor)", cls.remedy_above_target)
    return GradNormVerdict(level, mean, f"norms below {target:g}: the critic does not use its Lipschitz budget and "
                           f"its gap underestimates W1", cls.remedy_below_target)


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
    grad = input_gradient(critic, x_hat.detach(), create_graph=False)
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
