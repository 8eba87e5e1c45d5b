r"""Adversarial objectives as pairs of losses, both minimised.

Every objective gives ``critic_loss(score_real, score_fake)`` and ``generator_loss(score_fake)``;
scores are the critic's raw outputs (logits for the minimax and non-saturating GAN). An objective may
also give its critic loss's gradients with respect to the scores in closed form
(``critic_loss_grads``), which the engines that write the critic's backward out use instead of
autograd (:mod:`wgan.engines`).

References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014 (minimax, non-saturating, eq. 1).
    Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017 (eq. 3).
    Lim & Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization for GANs", ICLR 2018 (hinge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wgan.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    """A named pair of losses. ``wasserstein_gap`` says whether -critic_loss estimates W1.

    ``critic_loss_grads``, when given, is ``critic_loss`` in closed form with its gradients:
    ``(score_real, score_fake) -> (loss, d loss / d score_real, d loss / d score_fake)``.
    """

    name: str
    critic_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator_loss: Callable[[torch.Tensor], torch.Tensor]
    wasserstein_gap: bool
    critic_loss_grads: Callable[[torch.Tensor, torch.Tensor],
                                tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None


def wasserstein_critic_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    r"""Critic: maximise :math:`E[f(x_{real})] - E[f(G(z))]`, i.e. minimise its negative.

    .. math:: L_C = E[f(G(z))] - E[f(x)]

    Example:
        >>> wasserstein_critic_loss(torch.tensor([2.0]), torch.tensor([0.5]))
        tensor(-1.5000)
    """
    return score_fake.mean() - score_real.mean()


def wasserstein_critic_loss_grads(score_real: torch.Tensor, score_fake: torch.Tensor):
    r""":func:`wasserstein_critic_loss` and its gradients with respect to the scores, in closed form.

    .. math:: \frac{\partial L_C}{\partial f(x_i)} = -\frac{1}{N}, \qquad
              \frac{\partial L_C}{\partial f(G(z_j))} = \frac{1}{M}

    (The compiled MLP step, ``wgan/engines/csrc/mlp.cpp``, has its own copy.)

    Returns:
        ``(loss, d_real, d_fake)``: a scalar, then tensors shaped like ``score_real`` and ``score_fake``.

    Example:
        >>> loss, d_real, d_fake = wasserstein_critic_loss_grads(torch.tensor([2.0, 0.0]), torch.tensor([0.5]))
        >>> loss, d_real, d_fake
        (tensor(-0.5000), tensor([-0.5000, -0.5000]), tensor([1.]))
    """
    return (score_fake.mean() - score_real.mean(), torch.full_like(score_real, -1.0 / len(score_real)),
            torch.full_like(score_fake, 1.0 / len(score_fake)))


def wasserstein_generator_loss(score_fake: torch.Tensor) -> torch.Tensor:
    r"""Generator: minimise :math:`-E[f(G(z))]`."""
    return -score_fake.mean()


def minimax_critic_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    r"""Discriminator: maximise :math:`E[\log D(x)] + E[\log(1 - D(G(z)))]` with :math:`D = \sigma(f)`.

    .. math:: L_D = \mathrm{softplus}(-f(x)) + \mathrm{softplus}(f(G(z)))
    """
    return F.softplus(-score_real).mean() + F.softplus(score_fake).mean()


def minimax_generator_loss(score_fake: torch.Tensor) -> torch.Tensor:
    r"""Generator (saturating): minimise :math:`E[\log(1 - D(G(z)))] = -E[\mathrm{softplus}(f(G(z)))]`."""
    return -F.softplus(score_fake).mean()


def non_saturating_generator_loss(score_fake: torch.Tensor) -> torch.Tensor:
    r"""Generator (non-saturating): minimise :math:`-E[\log D(G(z))] = E[\mathrm{softplus}(-f(G(z)))]`."""
    return F.softplus(-score_fake).mean()


def hinge_critic_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    r""".. math:: L_C = E[\max(0, 1 - f(x))] + E[\max(0, 1 + f(G(z)))]"""
    return F.relu(1 - score_real).mean() + F.relu(1 + score_fake).mean()


OBJECTIVES: dict[str, Objective] = {
    "wasserstein": Objective("wasserstein", wasserstein_critic_loss, wasserstein_generator_loss, True,
                             wasserstein_critic_loss_grads),
    "minimax": Objective("minimax", minimax_critic_loss, minimax_generator_loss, False),
    "non_saturating": Objective("non_saturating", minimax_critic_loss, non_saturating_generator_loss, False),
    "hinge": Objective("hinge", hinge_critic_loss, wasserstein_generator_loss, False),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]
