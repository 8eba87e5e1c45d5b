r"""Weight clipping (Arjovsky et al., "Wasserstein GAN", 2017, algorithm 1, line 7).

After every critic optimiser step each parameter is clamped to :math:`[-c, c]`; the critic then
lies in a compact set of functions that are K-Lipschitz for some K depending on c and the net.
Clipping must come *after* the step: clipping before it lets the step leave the box.
"""

from __future__ import annotations

import torch
from torch import nn

from wgan.lipschitz import LipschitzMethod


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

    def __init__(self, clip_value: float = 0.01):
        if clip_value is None or clip_value <= 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}")
        self.clip_value = float(clip_value)

    @torch.no_grad()
    def after_step(self, critic: nn.Module) -> None:
        params = [p for p in critic.parameters()]
        torch._foreach_clamp_min_(params, -self.clip_value)
        torch._foreach_clamp_max_(params, self.clip_value)
