r"""Adversarial objectives as pairs of losses, both minimised.

Every objective gives ``critic_loss(score_real, score_fake)`` and ``generator_loss(score_fake)``;
scores are the critic's raw outputs (logits for the minimax and non-saturating GAN).

References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014 (minimax, non-saturating, eq. 1).
    Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017 (eq. 3).
    Lim & Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization for GANs", ICLR 2018 (hinge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Objective:
    """A named pair of losses. ``wasserstein_gap`` says whether -critic_loss estimates W1."""

    name: str
    critic_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator_loss: Callable[[torch.Tensor], torch.Tensor]
    wasserstein_gap: bool


def wasserstein_critic_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    r"""Critic: maximise :math:`E[f(x_{real})] - E[f(G(z))]`, i.e. minimise its negative.

    .. math:: L_C = E[f(G(z))] - E[f(x)]

    Example:
        >>> wasserstein_critic_loss(torch.tensor([2.0]), torch.tensor([0.5]))
        tensor(-1.5000)
    """
    return score_fake.mean() - score_real.mean()


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
    "wasserstein": Objective("wasserstein", wasserstein_critic_loss, wasserstein_generator_loss, True),
    "minimax": Objective("minimax", minimax_critic_loss, minimax_generator_loss, False),
    "non_saturating": Objective("non_saturating", minimax_critic_loss, non_saturating_generator_loss, False),
    "hinge": Objective("hinge", hinge_critic_loss, wasserstein_generator_loss, False),
}


def get_objective(name: str) -> Objective:
    from wgan.config import ConfigError

    if name not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]
