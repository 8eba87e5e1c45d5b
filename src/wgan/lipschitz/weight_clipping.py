r"""Weight clipping (Arjovsky et al., "Wasserstein GAN", 2017, algorithm 1, line 7).

After every critic optimiser step each parameter is clamped to :math:`[-c, c]`; the critic then
lies in a compact set of functions that are K-Lipschitz for some K depending on c and the net.
Clipping must come *after* the step: clipping before it lets the step leave the box.
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.errors import ConfigError
from wgan.lipschitz.base import LipschitzMethod


class WeightClipping(LipschitzMethod):
    """Clamp every critic parameter to [-clip_value, clip_value] after each optimiser step.

    Args:
        clip_value: the bound c (0.01 in the paper).

    Example:
        >>> critic = nn.Linear(2, 1); WeightClipping(0.01).after_step(critic)
        >>> bool(critic.weight.abs().max() <= 0.01)
        True
    """

    name = "clip"
    has_after_step = True
    coefficients = {"clip_value": 0.01}
    grad_norm_reading = ("weight clipping bounds the Lipschitz constant by an unknown K rather than pinning the "
                         "norm to 1; the critic estimates about K x W1, so read the shape of its curve, not its value")
    grad_norm_remedy = "use --variant wgan-gp for a 1-Lipschitz critic"
    remedy_unstable = "lower --clip-value, or switch to --variant wgan-gp (the penalty does not cut capacity)"
    remedy_explosion = "lower --clip-value and the learning rates; check the data scale"
    duality_reading = ("clipping gives an unknown constant K << 1, so the raw estimate is about K x W1; "
                       "compare the rescaled line")

    def __init__(self, clip_value: float = 0.01):
        if clip_value is None or clip_value <= 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}")
        self.clip_value = float(clip_value)

    @classmethod
    def from_config(cls, config) -> WeightClipping:
        return cls(config.clip_value)

    @classmethod
    def check_config(cls, config, variant: str | None = None) -> None:
        c = config.clip_value
        if c is not None and not c > 0:
            raise ConfigError(f"--clip-value must be > 0, got {c}")
        if variant is not None and c is None:
            raise ConfigError(f"--clip-value must be set for --variant {variant} (weight clipping), got None")

    @torch.no_grad()
    def after_step(self, critic: nn.Module) -> None:
        params = [p for p in critic.parameters()]
        torch._foreach_clamp_min_(params, -self.clip_value)
        torch._foreach_clamp_max_(params, self.clip_value)
