"""Toy 2-D data sets: the ring of 8 Gaussians, the 5x5 grid, the 3-component mixture, the swiss roll.

Defaults follow the standard toy protocol (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018):
ring8 has radius 2 and std 0.02 (radius / std = 100), grid25 has spacing 2 and std 0.05
(spacing / std = 40). mixture3 is the source texts' mixture: centres (0, 0), (3, 3), (-2, 3), std 0.5.
The swiss roll follows the WGAN-GP toy code (2-D slice of the roll, scaled by 1/7.5, noise 0.25).
"""

from __future__ import annotations

import math

import torch

from wgan.data.base import DataSource, register_check, register_toy
from wgan.errors import ConfigError


@register_check
def check_config(config) -> None:
    """The toy geometry fields: ``--data-scale`` and ``--data-std`` are > 0 when set."""
    for name in ("data_scale", "data_std"):
        v = getattr(config, name)
        if v is not None and not v > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {v}")


class MixtureSampler:
    """Draws from an equal-weight mixture of isotropic Gaussians with the given centres."""

    def __init__(self, centers: torch.Tensor, std: float):
        self.centers = centers
        self.std = std

    def __call__(self, n: int, rng: torch.Generator) -> torch.Tensor:
        dev = self.centers.device
        k = torch.randint(len(self.centers), (n,), generator=rng, device=rng.device).to(dev)
        noise = torch.randn(n, 2, generator=rng, device=rng.device).to(dev)
        return noise.mul_(self.std).add_(self.centers.index_select(0, k))  # centre + std * noise

    def to(self, device) -> MixtureSampler:
        return MixtureSampler(self.centers.to(device), self.std)


def ring_centers(n: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1).float()


def grid_centers(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    offsets = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(offsets, offsets, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def _mixture(name: str, centers: torch.Tensor, std: float) -> DataSource:
    return DataSource(name=name, kind="toy", shape=(2,), sampler=MixtureSampler(centers, std),
                      centers=centers, std=std)


@register_toy("ring8")
def ring8(config) -> DataSource:
    radius = config.data_scale or 2.0
    return _mixture("ring8", ring_centers(8, radius), config.data_std or radius / 100)


@register_toy("grid25")
def grid25(config) -> DataSource:
    spacing = config.data_scale or 2.0
    return _mixture("grid25", grid_centers(5, spacing), config.data_std or spacing / 40)


@register_toy("mixture3")
def mixture3(config) -> DataSource:
    scale = config.data_scale or 1.0
    centers = torch.tensor([[0.0, 0.0], [3.0, 3.0], [-2.0, 3.0]]) * scale
    return _mixture("mixture3", centers, config.data_std or 0.5 * scale)


class SwissRollSampler:
    def __init__(self, scale: float, noise: float, device="cpu"):
        self.scale, self.noise, self.device = scale, noise, torch.device(device)

    def __call__(self, n: int, rng: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, generator=rng, device=rng.device)
        t = 1.5 * math.pi * (1 + 2 * u)  # as sklearn.datasets.make_swiss_roll
        eps = torch.randn(n, 2, generator=rng, device=rng.device)
        x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) + self.noise * eps
        return (x * (self.scale / 7.5)).to(self.device)

    def to(self, device) -> SwissRollSampler:
        return SwissRollSampler(self.scale, self.noise, device)


@register_toy("swissroll")
def swissroll(config) -> DataSource:
    return DataSource(name="swissroll", kind="toy", shape=(2,),
                      sampler=SwissRollSampler(config.data_scale or 1.0, config.data_std or 0.25))
