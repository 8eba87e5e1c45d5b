"""wgan: Wasserstein GANs (weight clipping, gradient penalty, spectral norm) and the vanilla GAN,
with diagnostics that say whether training is healthy.

Importing this package loads no matplotlib and touches no device.
"""

from __future__ import annotations

__version__ = "0.1.0"

from wgan.config import ConfigError, TrainConfig
from wgan.distances import js_divergence, kl_divergence, wasserstein_1d, wasserstein_exact
from wgan.lipschitz import LIPSCHITZ, LipschitzMethod, build_lipschitz
from wgan.lipschitz.gradient_penalty import GradientPenalty, gradient_penalty, interpolate
from wgan.lipschitz.spectral_norm import SpectralNorm
from wgan.lipschitz.weight_clipping import WeightClipping
from wgan.objectives import OBJECTIVES, get_objective
from wgan.variants import VARIANTS, get_variant


def train(config: TrainConfig | dict | None = None, **overrides):
    """Train with ``config`` (a TrainConfig, a dict of fields, or keyword fields); returns the summary."""
    from dataclasses import asdict

    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    if isinstance(config, TrainConfig):
        config = asdict(config)
    cfg = resolve({**(config or {}), **overrides})
    return Trainer(cfg).train()


def __getattr__(name: str):
    if name == "Trainer":
        from wgan.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'wgan' has no attribute {name!r}")


__all__ = [
    "ConfigError", "TrainConfig", "Trainer", "train",
    "wasserstein_1d", "wasserstein_exact", "js_divergence", "kl_divergence",
    "gradient_penalty", "interpolate", "GradientPenalty", "WeightClipping", "SpectralNorm",
    "LipschitzMethod", "build_lipschitz", "LIPSCHITZ", "OBJECTIVES", "get_objective", "VARIANTS", "get_variant",
]
