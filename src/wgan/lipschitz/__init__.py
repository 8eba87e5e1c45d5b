"""Lipschitz methods: how a critic is kept (approximately) 1-Lipschitz. A registry, one file per method.

A method is a :class:`~wgan.lipschitz.base.LipschitzMethod` subclass: hooks that do nothing by default
(``wrap``, ``penalty``, ``after_step``, ``closed_form_penalty``; ``needs_interpolates``, ``interval``),
so the trainer knows no method by name; its construction and validation from a config
(``from_config``, ``check_config``); the gradient norm it aims for and the advice the diagnostics and
``wgan duality`` print (attributes of the class).

A new method is one file (a subclass) plus one line in :data:`LIPSCHITZ` (with its import).
"""

from __future__ import annotations

from wgan.errors import ConfigError
from wgan.lipschitz.base import LipschitzMethod, NoConstraint
from wgan.lipschitz.gradient_penalty import GradientPenalty
from wgan.lipschitz.spectral_norm import SpectralNorm
from wgan.lipschitz.weight_clipping import WeightClipping

#: Method name (a variant's ``lipschitz``) -> method class.
LIPSCHITZ: dict[str, type[LipschitzMethod]] = {
    NoConstraint.name: NoConstraint,
    GradientPenalty.name: GradientPenalty,
    WeightClipping.name: WeightClipping,
    SpectralNorm.name: SpectralNorm,
}


def get_lipschitz(name: str) -> type[LipschitzMethod]:
    """The registered method class ``name``, or ConfigError naming the registered ones.

    For a lenient look-up (an old run's method that is no longer registered), use
    ``LIPSCHITZ.get(name, LipschitzMethod)``: the base class has generic advice and no norm target.
    """
    if name not in LIPSCHITZ:
        raise ConfigError(f"Lipschitz method must be one of {', '.join(LIPSCHITZ)}, got {name!r}")
    return LIPSCHITZ[name]


def build_lipschitz(name: str, config) -> LipschitzMethod:
    """Instantiate the method ``name`` with the config's coefficients (:meth:`LipschitzMethod.from_config`)."""
    return get_lipschitz(name).from_config(config)


def check_config(config, variant: str, method: str) -> None:
    """Validate every registered method's fields, then the fields ``method`` (the variant's) needs."""
    for cls in LIPSCHITZ.values():
        cls.check_config(config)
    get_lipschitz(method).check_config(config, variant)


__all__ = ["LIPSCHITZ", "LipschitzMethod", "NoConstraint", "GradientPenalty", "SpectralNorm", "WeightClipping",
           "build_lipschitz", "check_config", "get_lipschitz"]
