"""Network registry: architectures only. Networks never own a loss or an optimiser."""

from __future__ import annotations

from torch import nn


def resolve_arch(config, data) -> str:
    if config.arch != "auto":
        return config.arch
    return "conv" if len(data.shape) == 3 else "mlp"


def build_nets(config, data) -> tuple[nn.Module, nn.Module]:
    """Return ``(generator, critic)`` for the config's architecture and the data's sample shape."""
    from wgan.config import ConfigError

    arch = resolve_arch(config, data)
    if arch == "mlp":
        from wgan.nets.mlp import MLPCritic, MLPGenerator

        dim = 1
        for s in data.shape:
            dim *= s
        gen = MLPGenerator(config.z_dim, data.shape, config.g_width, config.g_depth, config.activation)
        critic = MLPCritic(dim, config.c_width, config.c_depth, config.activation, config.critic_norm)
        return gen, critic
    if arch == "conv":
        if len(data.shape) != 3:
            raise ConfigError(f"--arch conv needs image data (C, H, W); {config.data!r} has shape {data.shape}")
        from wgan.nets.conv import ConvCritic, ConvGenerator

        c, h, _ = data.shape
        gen = ConvGenerator(config.z_dim, c, h, config.g_width)
        critic = ConvCritic(c, h, config.c_width, config.critic_norm)
        return gen, critic
    raise ConfigError(f"--arch must be auto, mlp or conv, got {arch!r}")
