"""Data sources selected by ``--data``: a registry of toy sets by name and image readers by prefix.

Every source is a :class:`DataSource`: ``sample(n, rng)`` returns ``n`` rows on the source's device,
drawn with the explicit generator ``rng`` (never the global RNG, so a checkpoint can restore it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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

    def to(self, device: torch.device | str) -> "DataSource":
        for name in ("x", "labels", "x_test", "labels_test", "centers"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device))
        if self.sampler is not None and hasattr(self.sampler, "to"):
            self.sampler = self.sampler.to(device)
        return self


# name -> factory(config) for toy sets; prefix -> factory(path, config) for files
TOY: dict[str, Callable] = {}
PREFIXED: dict[str, Callable] = {}


def register_toy(name: str):
    def deco(fn):
        TOY[name] = fn
        return fn
    return deco


def register_prefix(prefix: str):
    def deco(fn):
        PREFIXED[prefix] = fn
        return fn
    return deco


def _import_readers() -> None:
    from wgan.data import images, toy  # noqa: F401  (they register themselves)


def is_toy(spec: str) -> bool:
    _import_readers()
    return spec in TOY


def check_data_spec(spec: str) -> None:
    """Raise ConfigError unless ``spec`` names a toy set or ``PREFIX:PATH`` with a known prefix."""
    from wgan.config import ConfigError

    _import_readers()
    if spec in TOY:
        return
    prefix, sep, path = spec.partition(":")
    if sep and prefix in PREFIXED and path:
        return
    accepted = ", ".join(list(TOY) + [f"{p}:PATH" for p in PREFIXED])
    raise ConfigError(f"--data must be one of {accepted}; got {spec!r}")


def load_data(config) -> DataSource:
    """Build the data source that ``config.data`` names."""
    check_data_spec(config.data)
    if config.data in TOY:
        return TOY[config.data](config)
    prefix, _, path = config.data.partition(":")
    return PREFIXED[prefix](path, config)
