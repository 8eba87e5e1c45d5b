r"""Gradient penalty (Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, eq. 3).

.. math::
    \hat x = \alpha x_{real} + (1 - \alpha) x_{fake}, \quad \alpha \sim U[0, 1] \text{ per sample}

    P = \lambda\, E_{\hat x}\big[(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2\big]

The norm runs over every non-batch axis (an image's C, H and W together); one-sided
(Petzka et al., 2018) penalises only :math:`\max(0, \|\nabla f\| - 1)^2`. The norm is
:math:`\sqrt{\sum g^2 + 10^{-12}}`, finite with a finite gradient where the gradient is exactly 0.
BatchNorm mixes samples, so a per-sample penalty is meaningless with it: such critics are refused.
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.errors import ConfigError
from wgan.lipschitz.base import LipschitzMethod

_EPS = 1e-12


def interpolate(x_real: torch.Tensor, x_fake: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    """Points on the segments between paired samples, one coefficient per sample.

    Shape: alpha is (N, 1, ..., 1), broadcast over every non-batch axis.
    """
    shape = (len(x_real),) + (1,) * (x_real.dim() - 1)
    alpha = torch.rand(shape, generator=rng, device=x_real.device, dtype=x_real.dtype)
    return torch.lerp(x_fake, x_real, alpha)  # alpha x_real + (1 - alpha) x_fake


def input_gradient(critic: nn.Module, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """The gradient of the critic's score with respect to its input, per sample: (N, ...) like x.

    By autograd; ``create_graph`` keeps the graph for a loss on the gradient (a double backward). The
    engines' written-out form for plain layer stacks is :func:`wgan.engines.fastgrad.input_gradient`.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = critic(x)
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=create_graph)
    return grad


def gradient_norms(grad: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm over every non-batch axis, finite (and differentiable) at zero. Shape (N,)."""
    return (grad.flatten(1).square().sum(1) + _EPS).sqrt()


def gradient_penalty(critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                     x_hat: torch.Tensor | None = None, one_sided: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Unweighted penalty :math:`E[(\|\nabla f(\hat x)\| - 1)^2]` and the norms it was computed from.

    Args:
        critic: maps (N, ...) to scores (N,).
        x_real, x_fake: paired batches of the same shape.
        x_hat: interpolates; drawn here from the global RNG when ``None``.
        one_sided: penalise only norms above 1.

    Returns:
        ``(penalty, norms)``: a scalar with a graph to the critic's parameters, and (N,) norms.

    Example:
        >>> critic = nn.Linear(2, 1, bias=False); critic.weight.data = torch.tensor([[0.6, 0.8]])
        >>> p, n = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(4, 2), torch.randn(4, 2))
        >>> float(p.detach()) < 1e-10
        True
    """
    if x_hat is None:
        x_hat = interpolate(x_real.detach(), x_fake.detach())
    return penalty_of_gradient(input_gradient(critic, x_hat, create_graph=True), one_sided)


def penalty_of_gradient(grad: torch.Tensor, one_sided: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`E[(\|g\| - 1)^2]` (one-sided: :math:`E[\max(0, \|g\| - 1)^2]`) of per-sample gradients
    ``grad`` (N, ...), and the (N,) norms."""
    norms = gradient_norms(grad)
    excess = norms - 1
    if one_sided:
        excess = excess.clamp_min(0)
    return excess.square().mean(), norms


class NormPenalty:
    r"""The weighted penalty as a closed-form function of the input gradient, with its derivative:
    ``g -> (gain E[(||g|| - 1)^2], norms, d value / d g)``, one-sided: :math:`\max(0, \|g\| - 1)^2`.

    .. math:: \frac{\partial P}{\partial g_i} = \frac{2\,\text{gain}}{N}\,
              \frac{\|g_i\| - 1}{\|g_i\|}\, g_i

    The same value as ``gain *`` :func:`penalty_of_gradient` and its autograd gradient; engines that
    write the critic's backward out use it instead of autograd (:mod:`wgan.engines`), and the compiled
    MLP step (``wgan/engines/csrc/mlp.cpp``) has its own copy, checked against this one by
    ``tests/test_native.py``.

    Args:
        gain: the penalty's weight (times the lazy interval).
        one_sided: penalise only norms above 1.
        eps: under the norm's square root, as :func:`gradient_norms`.
    """

    def __init__(self, gain: float, one_sided: bool = False, eps: float = _EPS):
        self.gain, self.one_sided, self.eps = float(gain), bool(one_sided), float(eps)

    def __call__(self, g: torch.Tensor):
        norms = (g.flatten(1).square().sum(1) + self.eps).sqrt()
        excess = norms - 1
        if self.one_sided:
            excess = excess.clamp_min(0)
        coef = excess * (2 * self.gain / len(g)) / norms
        return self.gain * excess.square().mean(), norms, g * coef.view((-1,) + (1,) * (g.dim() - 1))

    def __repr__(self) -> str:
        return f"NormPenalty(gain={self.gain!r}, one_sided={self.one_sided!r}, eps={self.eps!r})"


def check_no_batchnorm(critic: nn.Module) -> None:
    for name, module in critic.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ConfigError(
                f"the gradient penalty is per sample, but the critic has BatchNorm at {name or 'top'!r}, which "
                "mixes samples; use --critic-norm layer (LayerNorm) or none")


class GradientPenalty(LipschitzMethod):
    """The WGAN-GP penalty at interpolates, weighted by ``weight`` (lambda; 10 in the paper).

    Args:
        weight: lambda.
        one_sided: penalise only gradient norms above 1.
        interval: lazy regularisation, penalty every ``interval`` critic steps with gain ``interval``.
        fast: offer the penalty in closed form (:meth:`closed_form_penalty`), so an engine may write
            the critic's backward out (``--fast-penalty``); off, every critic step takes autograd's
            double backward.
    """

    name = "gp"
    needs_interpolates = True
    coefficients = {"gp_weight": 10.0}
    grad_norm_target = 1.0  # the norm of an optimal 1-Lipschitz critic on the segments (proposition 1)
    remedy_above_target = "increase --gp-weight: the penalty is too weak"
    remedy_below_target = ("give the critic more capacity or steps (--c-width, --n-critic, --lr-c), or lower "
                           "--gp-weight if the penalty dominates the critic's loss")
    remedy_unstable = "increase --gp-weight (e.g. x10) or lower --lr-c; keep BatchNorm out of the critic"
    remedy_explosion = "increase --gp-weight, lower --lr-c/--lr-g, and keep the data scaled to about [-1, 1]"
    duality_reading = ("the penalty holds the slope near 1, so the raw estimate is the W1 estimate; a soft "
                       "penalty overshoots by the fraction W1 / (2 gp_weight)")

    def __init__(self, weight: float = 10.0, one_sided: bool = False, interval: int = 1, fast: bool = True):
        if weight is None or weight < 0:
            raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")
        if interval < 1:
            raise ValueError(f"penalty interval must be >= 1, got {interval}")
        self.weight = float(weight)
        self.one_sided = one_sided
        self.interval = int(interval)
        self.fast = fast

    @classmethod
    def from_config(cls, config) -> GradientPenalty:
        return cls(config.gp_weight, one_sided=config.gp_one_sided, interval=config.penalty_every,
                   fast=config.fast_penalty)

    @classmethod
    def check_config(cls, config, variant: str | None = None) -> None:
        w = config.gp_weight
        if w is not None and not w >= 0:
            raise ConfigError(f"--gp-weight must be >= 0, got {w}")
        if not config.penalty_every >= 1:
            raise ConfigError(f"--penalty-every must be >= 1, got {config.penalty_every}")
        if variant is None:
            return
        if w is None:
            raise ConfigError(f"--gp-weight must be set for --variant {variant} (gradient penalty), got None")
        if config.critic_norm == "batch":  # the wrap hook refuses such a critic too; say it before building
            raise ConfigError(f"--critic-norm batch cannot be used with --variant {variant}: the gradient penalty "
                              f"is per sample and BatchNorm mixes the samples of a batch; use --critic-norm layer "
                              f"or none")

    def wrap(self, critic: nn.Module) -> nn.Module:
        check_no_batchnorm(critic)
        return critic

    def penalty(self, critic, x_real, x_fake, x_hat):
        pen, norms = gradient_penalty(critic, x_real, x_fake, x_hat, one_sided=self.one_sided)
        return self.weight * self.interval * pen, norms

    def closed_form_penalty(self) -> NormPenalty | None:
        """This penalty (its gain: weight x interval) in closed form for the engines that write the
        critic's backward out, or ``None`` when ``fast`` is off (then every engine takes
        :meth:`penalty` and autograd's double backward)."""
        return NormPenalty(self.weight * self.interval, self.one_sided, _EPS) if self.fast else None
