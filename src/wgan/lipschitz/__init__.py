"""Lipschitz methods: how a critic is kept (approximately) 1-Lipschitz.

A method has three hooks that do nothing by default, so the trainer knows no method by name:

* ``wrap(critic)`` once, before the optimiser is built (spectral normalisation);
* ``penalty(critic, x_real, x_fake, x_hat)`` in every critic step (gradient penalty); returns the
  weighted term to add to the loss and the per-sample gradient norms at ``x_hat`` (or ``None``);
* ``after_step(critic)`` after every critic optimiser step (weight clipping).

``interval`` > 1 makes the penalty lazy: applied every ``interval`` critic steps with gain ``interval``.
A new method is one file plus one line in :data:`LIPSCHITZ`.
"""

from __future__ import annotations

import torch
from torch import nn


class LipschitzMethod:
    """Base: no constraint (the vanilla GAN's discriminator)."""

    name = "none"
    needs_interpolates = False  # the step draws x_hat = a x_real + (1 - a) x_fake only when True
    interval = 1

    def wrap(self, critic: nn.Module) -> nn.Module:
        return critic

    def penalty(self, critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                x_hat: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def after_step(self, critic: nn.Module) -> None:
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def build_lipschitz(name: str, config) -> LipschitzMethod:
    """Instantiate the method ``name`` with the config's coefficients."""
    from wgan.config import ConfigError
    from wgan.lipschitz.gradient_penalty import GradientPenalty
    from wgan.lipschitz.spectral_norm import SpectralNorm
    from wgan.lipschitz.weight_clipping import WeightClipping

    if name == "none":
        return LipschitzMethod()
    if name == "clip":
        return WeightClipping(config.clip_value)
    if name == "gp":
        return GradientPenalty(config.gp_weight, one_sided=config.gp_one_sided, interval=config.penalty_every,
                               fast=config.fast_penalty)
    if name == "sn":
        return SpectralNorm()
    raise ConfigError(f"Lipschitz method must be one of {', '.join(LIPSCHITZ)}, got {name!r}")


LIPSCHITZ = ("none", "clip", "gp", "sn")
