"""wgan: Wasserstein GANs (weight clipping, gradient penalty, spectral norm) and the vanilla GAN,
with diagnostics that say whether training is healthy.

Importing this package loads no matplotlib and touches no device.
"""

from __future__ import annotations

__version__ = "0.1.0"

from wgan.config import TrainConfig, given, resolve
from wgan.distances import js_divergence, kl_divergence, wasserstein_1d, wasserstein_exact
from wgan.errors import ConfigError
from wgan.lipschitz import LIPSCHITZ, LipschitzMethod, build_lipschitz, get_lipschitz
from wgan.lipschitz.gradient_penalty import GradientPenalty, gradient_penalty, interpolate
from wgan.lipschitz.spectral_norm import SpectralNorm
from wgan.lipschitz.weight_clipping import WeightClipping
from wgan.objectives import OBJECTIVES, get_objective
from wgan.training.trainer import Trainer
from wgan.variants import VARIANTS, get_variant


def train(config: TrainConfig | dict | None = None, **overrides):
    """Train with ``config`` and keyword overrides; returns the summary.

    ``config`` may be a :class:`TrainConfig` (its fields left ``None`` are filled by the variant and the
    preset: ``train(TrainConfig(steps=20))`` trains the default recipe for 20 steps), a dict of fields,
    or ``None``; keyword fields win over it. See :func:`wgan.config.resolve`.

    Example:
        >>> summary = train(TrainConfig(steps=20, tick_every_steps=20))  # doctest: +SKIP
    """
    return Trainer(resolve({**given(config), **overrides})).train()


__all__ = [
    "ConfigError", "TrainConfig", "Trainer", "train",
    "wasserstein_1d", "wasserstein_exact", "js_divergence", "kl_divergence",
    "gradient_penalty", "interpolate", "GradientPenalty", "WeightClipping", "SpectralNorm",
    "LipschitzMethod", "build_lipschitz", "get_lipschitz", "LIPSCHITZ", "OBJECTIVES", "get_objective",
    "VARIANTS", "get_variant",
]
