"""Named recipes: objective + Lipschitz method + n_critic + optimiser defaults.

A variant is a recipe, not a network subclass. Each default names its source. A new variant is one
entry in :data:`VARIANTS` naming a registered objective (``wgan.objectives.OBJECTIVES``) and Lipschitz
method (``wgan.lipschitz.LIPSCHITZ``); the common tests check that it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wgan.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    name: str
    objective: str  # a key of wgan.objectives.OBJECTIVES
    lipschitz: str  # a key of wgan.lipschitz.LIPSCHITZ
    n_critic: int
    optimizer: str
    lr: float
    betas: tuple[float, float] | None
    source: str
    extra: dict[str, Any] = field(default_factory=dict)  # method coefficients: gp_weight, clip_value

    def defaults(self) -> dict[str, Any]:
        """Config fields this recipe sets."""
        d = {"n_critic": self.n_critic, "optimizer": self.optimizer, "lr_g": self.lr, "lr_c": self.lr,
             "beta1": self.betas[0] if self.betas else None, "beta2": self.betas[1] if self.betas else None}
        d.update(self.extra)
        return d


VARIANTS: dict[str, Variant] = {
    "gan": Variant(
        "gan", "non_saturating", "none", 1, "adam", 2e-4, (0.5, 0.999),
        "Goodfellow et al. 2014 (non-saturating loss, sec. 3); Adam 2e-4, beta1 0.5 from DCGAN, "
        "Radford et al. 2016"),
    "wgan": Variant(
        "wgan", "wasserstein", "clip", 5, "rmsprop", 5e-5, None,
        "Arjovsky et al. 2017, algorithm 1: c = 0.01, RMSprop lr 5e-5, n_critic = 5",
        {"clip_value": 0.01}),
    "wgan-gp": Variant(
        "wgan-gp", "wasserstein", "gp", 5, "adam", 1e-4, (0.5, 0.9),
        "Gulrajani et al. 2017, algorithm 1: lambda = 10, Adam lr 1e-4, betas (0.5, 0.9), n_critic = 5",
        {"gp_weight": 10.0}),
    "sngan": Variant(
        "sngan", "hinge", "sn", 1, "adam", 2e-4, (0.5, 0.999),
        "Miyato et al. 2018: spectral-norm critic, hinge loss, setting C (Adam 2e-4, (0.5, 0.999), n_dis = 1)"),
    "wgan-sn": Variant(
        "wgan-sn", "wasserstein", "sn", 5, "adam", 1e-4, (0.5, 0.9),
        "Wasserstein loss with a spectral-norm critic (Miyato et al. 2018, table 1, setting A optimiser)"),
}


def get_variant(name: str) -> Variant:
    """The recipe ``name``, or ConfigError naming the registered ones."""
    if name not in VARIANTS:
        raise ConfigError(f"--variant must be one of {', '.join(VARIANTS)}; got {name!r}")
    return VARIANTS[name]
