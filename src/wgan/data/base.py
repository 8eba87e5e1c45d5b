"""The data-source registry's ground floor: :class:`DataSource` and the registration decorators.

Imports nothing of wgan's, so every source module (``toy``, ``images``, ...) registers
itself here and :mod:`wgan.data` imports the source modules: no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class DataSource:
    """A data set ready for training.

    ``kind`` is ``"toy"`` (2-D points, ``centers``/``std`` known for the toy metrics) or ``"image"``
    (``x`` holds every image as one tensor in [-1, 1], shape (N, C, H, W)).
    """

    name: str
    kind: str
    shape: tuple[int, ...]  # one sample, without the batch axis
    sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None  # toy: fresh draws
    x: torch.Tensor | None = None  # image: (N, C, H, W) in [-1, 1]
    labels: torch.Tensor | None = None  # image: (N,) int64 or None
    x_test: torch.Tensor | None = None  # held-out images for metrics and the validation gap
    labels_test: torch.Tensor | None = None
    num_classes: int | None = None
    centers: torch.Tensor | None = None  # toy mixtures: (K, 2) mode centres
    std: float | None = None  # toy mixtures: component std (high quality = within 3 std)

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        if self.sampler is not None:
            return self.sampler(n, rng)
        assert self.x is not None
        idx = torch.randint(len(self.x), (n,), generator=rng, device=rng.device)
        return self.x[idx.to(self.x.device)]

    def to(self, device: torch.device | str) -> DataSource:
        for name in ("x", "labels", "x_test", "labels_test", "centers"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device))
        if self.sampler is not None and hasattr(self.sampler, "to"):
            self.sampler = self.sampler.to(device)
        return self


#: Toy set name -> factory ``(config) -> DataSource`` (``--data NAME``).
TOY: dict[str, Callable] = {}
#: File prefix -> factory ``(path, config) -> DataSource`` (``--data PREFIX:PATH``).
PREFIXED: dict[str, Callable] = {}
#: Checks ``(config) -> None`` of the fields a family of sources reads (``--image-size``, ``--data-std``...);
#: each raises :class:`~wgan.errors.ConfigError` naming the field.
FIELD_CHECKS: list[Callable] = []


def register_toy(name: str):
    """Decorator: register a toy set factory ``(config) -> DataSource`` under ``--data NAME``."""
    def deco(fn):
        TOY[name] = fn
        return fn
    return deco


def register_prefix(prefix: str):
    """Decorator: register a file reader ``(path, config) -> DataSource`` under ``--data PREFIX:PATH``."""
    def deco(fn):
        PREFIXED[prefix] = fn
        return fn
    return deco


def register_check(fn: Callable) -> Callable:
    """Decorator: register a check ``(config) -> None`` of the config fields a source module reads."""
    FIELD_CHECKS.append(fn)
    return fn
