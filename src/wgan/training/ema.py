r"""Exponential moving average of generator weights (Yazici et al., "The Unusual Effectiveness of
Averaging in GAN Training", ICLR 2019).

.. math:: \bar\theta \leftarrow \beta \bar\theta + (1 - \beta) \theta  \quad\text{after each generator step}
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``module`` whose floating parameters track it with decay ``decay``."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        ema_p = list(self.module.parameters())
        torch._foreach_lerp_(ema_p, list(module.parameters()), 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), module.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
