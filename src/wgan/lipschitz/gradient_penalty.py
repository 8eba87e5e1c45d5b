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

from wgan.lipschitz import LipschitzMethod
from wgan.nets.fastgrad import NormPenalty, per_sample_norms

_EPS = 1e-12


def interpolate(x_real: torch.Tensor, x_fake: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    """Points on the segments between paired samples, one coefficient per sample.

    Shape: alpha is (N, 1, ..., 1), broadcast over every non-batch axis.
    """
    shape = (len(x_real),) + (1,) * (x_real.dim() - 1)
    alpha = torch.rand(shape, generator=rng, device=x_real.device, dtype=x_real.dtype)
    return torch.lerp(x_fake, x_real, alpha)  # alpha x_real + (1 - alpha) x_fake


def input_gradient(critic: nn.Module, x: torch.Tensor, create_graph: bool = True,
                   fast: bool = True) -> torch.Tensor:
    """The gradient of the critic's score with respect to its input, per sample: (N, ...) like x.

    Uses the critic's own written-out ``input_gradient`` when it has one and ``fast`` is set (a
    first-order graph, no double backward); otherwise autograd with ``create_graph``.
    """
    if fast and getattr(critic, "has_input_gradient", lambda: False)():
        return critic.input_gradient(x)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = critic(x)
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=create_graph)
    return grad


def gradient_norms(grad: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm over every non-batch axis, finite (and differentiable) at zero. Shape (N,)."""
    return per_sample_norms(grad, _EPS)


def gradient_penalty(critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                     x_hat: torch.Tensor | None = None, one_sided: bool = False,
                     fast: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
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
        >>> float(p) < 1e-10
        True
    """
    if x_hat is None:
        x_hat = interpolate(x_real.detach(), x_fake.detach())
    return penalty_of_gradient(input_gradient(critic, x_hat, create_graph=True, fast=fast), one_sided)


def penalty_of_gradient(grad: torch.Tensor, one_sided: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`E[(\|g\| - 1)^2]` (one-sided: :math:`E[\max(0, \|g\| - 1)^2]`) of per-sample gradients
    ``grad`` (N, ...), and the (N,) norms."""
    norms = gradient_norms(grad)
    excess = norms - 1
    if one_sided:
        excess = excess.clamp_min(0)
    return excess.square().mean(), norms


def check_no_batchnorm(critic: nn.Module) -> None:
    from wgan.config import ConfigError

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
        fast: use the critic's written-out input gradient when it offers one.
    """

    name = "gp"
    needs_interpolates = True

    def __init__(self, weight: float = 10.0, one_sided: bool = False, interval: int = 1, fast: bool = True):
        if weight is None or weight < 0:
            raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")
        if interval < 1:
            raise ValueError(f"penalty interval must be >= 1, got {interval}")
        self.weight = float(weight)
        self.one_sided = one_sided
        self.interval = int(interval)
        self.fast = fast

    def wrap(self, critic: nn.Module) -> nn.Module:
        check_no_batchnorm(critic)
        return critic

    def penalty(self, critic, x_real, x_fake, x_hat):
        pen, norms = gradient_penalty(critic, x_real, x_fake, x_hat, one_sided=self.one_sided, fast=self.fast)
        return self.weight * self.interval * pen, norms

    def penalised_backward(self, critic, critic_loss, x_real, x_fake, x_hat, critic_loss_grad=None):
        """The objective plus this penalty, with every critic parameter gradient accumulated, by the
        critic's written-out backward (``critic.penalised_backward``: no autograd graph of the critic
        at all) when ``fast`` is set and the critic offers one; ``None`` otherwise (then the step
        takes the general path: :meth:`penalty` and ``loss.backward()``). Same value, same gradients.

        ``critic_loss_grad`` optionally gives the objective's value and score gradients in closed form.

        Returns:
            ``(objective, score_real, score_fake, weighted penalty, norms)``, detached.
        """
        if not (self.fast and hasattr(critic, "penalised_backward") and critic.has_input_gradient()):
            return None
        gain = self.weight * self.interval
        closed = self.norm_penalty()

        def gradient_loss(grad):
            pen, norms = penalty_of_gradient(grad, self.one_sided)
            return gain * pen, norms

        return critic.penalised_backward(x_real, x_fake, x_hat, critic_loss, gradient_loss,
                                         critic_loss_grad=critic_loss_grad,
                                         gradient_loss_grad=closed)

    def norm_penalty(self) -> NormPenalty | None:
        """This penalty (its gain: weight x interval) in closed form for the written-out and compiled
        backward, or ``None`` when ``fast`` is off."""
        return NormPenalty(self.weight * self.interval, self.one_sided, _EPS) if self.fast else None
