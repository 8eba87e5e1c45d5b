"""Data sources selected by ``--data``: a registry of toy sets by name and file readers by prefix.

Every source is a :class:`DataSource`: ``sample(n, rng)`` returns ``n`` rows on the source's device,
drawn with the explicit generator ``rng`` (never the global RNG, so a checkpoint can restore it).

A new source is one module that registers its factory (``@register_toy("name")`` or
``@register_prefix("prefix")``, and ``@register_check`` for the config fields it reads) plus one
import line below.
"""

from __future__ import annotations

from wgan.data import images, toy  # noqa: F401  (the source modules: they register themselves)
from wgan.data.base import FIELD_CHECKS, PREFIXED, TOY, DataSource, register_check, register_prefix, register_toy
from wgan.errors import ConfigError


def is_toy(spec: str) -> bool:
    """Whether ``spec`` names a registered toy set (as opposed to ``PREFIX:PATH``)."""
    return spec in TOY


def check_data_spec(spec: str) -> None:
    """Raise ConfigError unless ``spec`` names a toy set or ``PREFIX:PATH`` with a known prefix."""
    if spec in TOY:
        return
    prefix, sep, path = spec.partition(":")
    if sep and prefix in PREFIXED and path:
        return
    accepted = ", ".join(list(TOY) + [f"{p}:PATH" for p in PREFIXED])
    raise ConfigError(f"--data must be one of {accepted}; got {spec!r}")


def check_config(config) -> None:
    """Raise ConfigError for a bad ``--data`` spec or a bad value of a field the sources read."""
    check_data_spec(config.data)
    for check in FIELD_CHECKS:
        check(config)


def load_data(config) -> DataSource:
    """Build the data source that ``config.data`` names."""
    check_data_spec(config.data)
    if config.data in TOY:
        return TOY[config.data](config)
    prefix, _, path = config.data.partition(":")
    return PREFIXED[prefix](path, config)


__all__ = ["DataSource", "FIELD_CHECKS", "PREFIXED", "TOY", "check_config", "check_data_spec", "is_toy",
           "load_data", "register_check", "register_prefix", "register_toy"]
