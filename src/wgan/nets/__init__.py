"""Network registry: architectures only. Networks never own a loss or an optimiser.

An architecture is a builder ``(config, shape) -> (generator, critic)`` registered in
:data:`ARCHITECTURES`: ``config`` gives the fields ``z_dim``, ``g_width``, ``g_depth``, ``c_width``,
``c_depth``, ``activation``, ``critic_norm`` (and ``data`` for messages), ``shape`` is one sample's
shape without the batch axis. A new architecture is one file (its nets and its builder) plus one
line in :data:`ARCHITECTURES` (with its import).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from wgan.errors import ConfigError
from wgan.nets.conv import ConvCritic, ConvGenerator
from wgan.nets.mlp import ACTIVATIONS, MLPCritic, MLPGenerator

#: Normalisations a critic may have between its layers (``--critic-norm``).
CRITIC_NORMS = ("none", "layer", "batch")


def build_mlp(config, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """MLPs for samples of any shape (images are flattened)."""
    gen = MLPGenerator(config.z_dim, shape, config.g_width, config.g_depth, config.activation)
    critic = MLPCritic(math.prod(shape), config.c_width, config.c_depth, config.activation, config.critic_norm)
    return gen, critic


def build_conv(config, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """DCGAN-style convolutional nets for images (C, H, W)."""
    if len(shape) != 3:
        raise ConfigError(f"--arch conv needs image data (C, H, W); {config.data!r} has shape {tuple(shape)}")
    c, h, _ = shape
    return ConvGenerator(config.z_dim, c, h, config.g_width), ConvCritic(c, h, config.c_width, config.critic_norm)


Builder = Callable[..., tuple[nn.Module, nn.Module]]

#: Architecture name (``--arch``) -> builder ``(config, shape) -> (generator, critic)``.
ARCHITECTURES: dict[str, Builder] = {
    "mlp": build_mlp,
    "conv": build_conv,
}


def _or(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def _shape(data) -> tuple[int, ...]:
    return tuple(data.shape) if hasattr(data, "shape") else tuple(data)


def resolve_arch(config, data) -> str:
    """The architecture for ``config.arch`` ("auto": conv for images (C, H, W), else mlp); ``data`` is a
    data set (anything with ``.shape``) or one sample's shape."""
    if config.arch != "auto":
        return config.arch
    return "conv" if len(_shape(data)) == 3 else "mlp"


def build_nets(config, data) -> tuple[nn.Module, nn.Module]:
    """Return ``(generator, critic)`` for the config's architecture and the data's sample shape.

    Args:
        config: a :class:`~wgan.config.TrainConfig` (or anything with its network fields).
        data: a data set (anything with ``.shape``) or one sample's shape.
    """
    arch = resolve_arch(config, data)
    if arch not in ARCHITECTURES:
        raise ConfigError(f"--arch must be {_or(['auto', *ARCHITECTURES])}, got {arch!r}")
    return ARCHITECTURES[arch](config, _shape(data))


def check_config(config) -> None:
    """Raise ConfigError for a network field whose value no registered architecture or layer accepts."""
    if config.arch != "auto" and config.arch not in ARCHITECTURES:
        raise ConfigError(f"--arch must be {_or(['auto', *ARCHITECTURES])}, got {config.arch!r}")
    if config.activation not in ACTIVATIONS:
        raise ConfigError(f"--activation must be {_or(ACTIVATIONS)}, got {config.activation!r}")
    if config.critic_norm not in CRITIC_NORMS:
        raise ConfigError(f"--critic-norm must be {_or(CRITIC_NORMS)}, got {config.critic_norm!r}")
